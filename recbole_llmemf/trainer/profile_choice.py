"""LLMEMF's content profile chosen on the validation set in one pass (``content_profile_scales``,
``content_profile_cold_offsets``; model/content_profile.py).

Every setting of the profile ranks the same candidates with the same model scores and the same
cosines; only how they add up differs. So one validation pass records, per batch, the model's own
scores as the evaluation masks them and the profile's cosines, and counts every setting's rank of
every case from them. Each setting's scores are computed with the model's own float operations, so
its ties are the evaluation's. The setting that validates best per target domain is then put in the
model, whose checkpoint saves it. One pass replaces one evaluation per setting.
"""

from __future__ import annotations

import itertools
import logging

import torch
from recbole.evaluator.collector import DataStruct

from recbole_llmemf.evaluator.metrics import TIES, expected_metric_class

logger = logging.getLogger(__name__)

# A setting: (scale, cold_scale, cold_offset); the last two None without cold items.
Setting = tuple[float, float | None, float | None]


def profile_settings(config, profile) -> list[Setting]:
    """Every scale of ``content_profile_scales``; with cold items, crossed with every cold scale
    (the same list) and every offset of ``content_profile_cold_offsets``."""
    scales = [float(scale) for scale in config["content_profile_scales"]]
    if profile.cold_items is None:
        return [(scale, None, None) for scale in scales]
    offsets = [float(offset) for offset in config["content_profile_cold_offsets"]]
    return list(itertools.product(scales, scales, offsets))


@torch.no_grad()
def choose_profile(trainer, valid_data) -> None:
    """Set ``trainer.model.content_profile``'s settings to those that validate best, per target
    domain (the first listed on ties), as early stopping chooses the epoch: on the validation
    cases, whose targets were held out from training as the test's were."""
    settings, values = validate_settings(trainer, valid_data)
    chosen = []
    for domain, name in enumerate(trainer.model.domain_names):
        best = max(range(len(settings)), key=values[domain].__getitem__)  # first on ties
        set_profile(trainer.model.content_profile, domain, settings[best])
        chosen.append(f"{name} {describe(settings[best])} ({values[domain][best]:.4f})")
    logger.info("content profile on validation (%s): %s", trainer.valid_metric, "; ".join(chosen))


@torch.no_grad()
def validate_settings(trainer, valid_data) -> tuple[list[Setting], list[list[float]]]:
    """Every setting of :func:`profile_settings` and, per target domain, the validation metric
    (``valid_metric``) of each, from one pass."""
    profile = trainer.model.content_profile
    settings = profile_settings(trainer.config, profile)
    counter = SettingTies(trainer.eval_collector, profile, settings)
    trainer.eval_collector, profile.recorded = counter, []
    try:
        trainer.evaluate(valid_data, load_best_model=False)
    finally:
        trainer.eval_collector, profile.recorded = counter.collector, None
    values = [
        [
            counter.metric(domain, index, trainer.valid_metric, trainer.config)
            for index in range(len(settings))
        ]
        for domain in range(len(trainer.model.domain_names))
    ]
    return settings, values


def set_profile(profile, domain: int, setting: Setting) -> None:
    scale, cold_scale, cold_offset = setting
    profile.scale[domain] = scale
    if cold_scale is not None:
        profile.cold_scale[domain], profile.cold_offset[domain] = cold_scale, cold_offset


def describe(setting: Setting) -> str:
    scale, cold_scale, cold_offset = setting
    text = f"scale {scale:g}"
    if cold_scale is not None:
        text += f", cold items {cold_scale:g} * cosine {cold_offset:+g}"
    return text


# Per case, ``[h, e, positives]`` under every setting: ``[cases, settings, 3]``. A rec.* key of the
# collector's struct, so that a multi-process evaluation gathers it with the ties
# (trainer/distributed.py: gather_cases) and every process chooses from all cases.
SETTING_TIES = "rec.profile_setting_ties"


class SettingTies:
    """The trainer's collector for the choosing pass: it collects as before, and also counts each
    case's :data:`SETTING_TIES`, per target domain (one evaluated part at a time)."""

    def __init__(self, collector, profile, settings: list[Setting]):
        self.collector, self.profile, self.settings = collector, profile, settings
        self.parts: list[tuple[int, DataStruct]] = []  # (domain, the part's struct)
        self._domain: int | None = None

    def __getattr__(self, name):  # everything else is the wrapped collector's
        return getattr(self.collector, name)

    def eval_batch_collect(self, scores, interaction, positive_u, positive_i):
        self.collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
        blocks = [block for block in self.profile.recorded if len(block[2])]  # rows scored
        self.profile.recorded.clear()
        if len(blocks) != 1:
            raise RuntimeError(
                "choosing the content profile needs one target domain per evaluation batch "
                f"(the domain-aware trainer's); got {len(blocks)}"
            )
        self._domain, items, cosines = blocks[0]
        batch = CaseScores(scores, items, cosines, self.profile.cold_items, positive_u, positive_i)
        ties = torch.stack([batch.ties(setting) for setting in self.settings], 1)
        self.collector.data_struct.update_tensor(SETTING_TIES, ties)

    def get_data_struct(self):
        """The wrapped collector's struct, kept with its part's domain: the evaluator may gather
        it across processes in place after this returns."""
        struct = self.collector.get_data_struct()
        if SETTING_TIES in self.collector.data_struct:  # not carried into the next part
            del self.collector.data_struct[SETTING_TIES]
            self.parts.append((self._domain, struct))
        return struct

    def metric(self, domain: int, index: int, metric: str, config) -> float:
        """``metric`` (RecBole's name, such as fullmrr or ndcg@10) of ``domain``'s cases under
        setting ``index``, computed by the evaluator's own metric class."""
        ties = [struct[SETTING_TIES][:, index] for part, struct in self.parts if part == domain]
        if not ties:  # no validation case of this domain
            return float("-inf")
        struct = DataStruct()
        struct.set(TIES, torch.cat(ties).cpu())
        return expected_metric_class(metric.split("@")[0])(config).calculate_metric(struct)[metric]


class CaseScores:
    """One batch's candidates: the model's masked scores and the profile's cosines, restricted to
    the candidates when every case has the same number (sampled protocols)."""

    def __init__(self, scores, items, cosines, cold_items, positive_u, positive_i):
        device = scores.device
        self.rows, positive_i = positive_u.to(device), positive_i.to(device)
        column_of_item = torch.full((scores.shape[1],), -1, dtype=torch.long, device=device)
        column_of_item[items] = torch.arange(len(items), device=device)
        scores = scores[:, items]  # the target domain's columns; -inf where not a candidate
        present = torch.isfinite(scores)
        target = column_of_item[positive_i]
        self.target = (scores[self.rows, target], cosines[self.rows, target])
        self.target_cold = None if cold_items is None else cold_items[positive_i]
        cold = None if cold_items is None else cold_items[items].expand_as(scores)
        counts = present.sum(1)
        if bool((counts == counts[0]).all()) and int(counts[0]) < scores.shape[1]:
            columns = present.nonzero()[:, 1].view(len(scores), -1)
            scores, cosines = scores.gather(1, columns), cosines.gather(1, columns)
            cold = None if cold is None else cold.gather(1, columns)
            present = None
        self.scores, self.cosines, self.cold, self.present = scores, cosines, cold, present

    def ties(self, setting: Setting) -> torch.Tensor:
        """``[P 3]``: per positive, the candidates scored above it, equal to it (itself
        included) and the positives of its case, under ``setting``."""
        fused = fuse(self.scores, self.cosines, self.cold, setting)
        if self.present is not None:
            fused = fused.masked_fill(~self.present, float("-inf"))
        target = fuse(*self.target, self.target_cold, setting).unsqueeze(1)
        rows = fused[self.rows]
        positives = torch.bincount(self.rows, minlength=len(fused))[self.rows]
        return torch.stack([(rows > target).sum(1), (rows == target).sum(1), positives], 1)


def fuse(scores, cosines, cold, setting: Setting) -> torch.Tensor:
    """ContentProfile.forward's arithmetic, term for term, for one setting."""
    scale, cold_scale, cold_offset = (
        None if value is None else torch.tensor(value, dtype=scores.dtype, device=scores.device)
        for value in setting
    )
    fused = scores + scale * cosines
    if cold is None:
        return fused
    return torch.where(cold, cold_scale * cosines + cold_offset, fused)
