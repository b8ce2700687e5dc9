"""LLMEMF's content profile chosen on the validation set in one pass (``content_profile_scales``,
``content_profile_cold_offsets``, ``content_profile_cold_temperatures``,
``content_profile_warm_temperatures``, ``content_profile_cold_tolerance``;
model/content_profile.py).

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
from typing import NamedTuple

import torch
from recbole.evaluator.collector import DataStruct

from recbole_llmemf.evaluator.metrics import TIES, expected_metric_class

logger = logging.getLogger(__name__)


class Setting(NamedTuple):
    """One setting of the profile; the cold fields are None where the model has no such buffer."""

    scale: float
    cold_scale: float | None = None  # content_profile_cold_offsets without a mixture
    cold_offset: float | None = None
    warm_temperature: float | None = None  # with content_profile_cold_temperatures
    cold_temperature: float | None = None


def profile_settings(config, profile) -> list[Setting]:
    """Every scale of ``content_profile_scales``; with cold items, crossed with every offset of
    ``content_profile_cold_offsets`` and every cold scale (the same list as the scales) or, for
    the mixture, every never-trained expert's temperature of ``content_profile_cold_temperatures``
    and every trained expert's of ``content_profile_warm_temperatures`` (~: the same list)."""
    scales = [float(scale) for scale in config["content_profile_scales"]]
    if profile.cold_items is None:
        return [Setting(scale) for scale in scales]
    offsets = [float(offset) for offset in config["content_profile_cold_offsets"]]
    if not profile.mixture:
        return [Setting(*values) for values in itertools.product(scales, scales, offsets)]
    cold_temperatures = [float(t) for t in config["content_profile_cold_temperatures"]]
    warm_temperatures = config["content_profile_warm_temperatures"] or cold_temperatures
    warm_temperatures = [float(t) for t in warm_temperatures]
    grid = itertools.product(scales, offsets, warm_temperatures, cold_temperatures)
    return [Setting(scale, None, offset, warm, cold) for scale, offset, warm, cold in grid]


@torch.no_grad()
def choose_profile(trainer, valid_data) -> None:
    """Set ``trainer.model.content_profile``'s settings to those that validate best, per target
    domain (the first listed on ties), as early stopping chooses the epoch: on the validation
    cases, whose targets were held out from training as the test's were. With
    ``content_profile_cold_tolerance``, those best on the never-trained targets with content among
    the settings within that fraction of the best."""
    settings, values, cold_values = validate_settings(trainer, valid_data)
    tolerance = trainer.model.content_profile.cold_tolerance
    chosen = apply_choice(trainer.model, settings, values, cold_values, tolerance)
    logger.info("content profile on validation (%s): %s", trainer.valid_metric, "; ".join(chosen))


def apply_choice(model, settings, values, cold_values, tolerance: float) -> list[str]:
    """Put each target domain's :func:`best_setting` in ``model.content_profile``; per domain, a
    line saying which, with its validation values."""
    chosen = []
    for domain, name in enumerate(model.domain_names):
        cold = None if cold_values is None else cold_values[domain]
        index = best_setting(values[domain], cold, tolerance)
        set_profile(model.content_profile, domain, settings[index])
        line = f"{name} {describe(settings[index])} ({values[domain][index]:.4f}"
        if cold is not None:
            line += f"; never-trained targets with content {cold[index]:.4f}"
        chosen.append(line + ")")
    return chosen


def best_setting(values: list[float], cold_values: list[float] | None, tolerance: float) -> int:
    """The index of the best of ``values`` (the first on ties) or, with a ``tolerance`` and
    ``cold_values``, of the best of ``cold_values`` among those within that fraction of it, ties
    (no such case at all among them) going to the best of ``values``."""
    best = max(range(len(values)), key=values.__getitem__)
    if not tolerance or cold_values is None:
        return best
    near = [index for index, value in enumerate(values) if value >= values[best] * (1 - tolerance)]
    return max(near, key=lambda index: (cold_values[index], values[index]))


@torch.no_grad()
def validate_settings(
    trainer, valid_data
) -> tuple[list[Setting], list[list[float]], list[list[float]] | None]:
    """Every setting of :func:`profile_settings` and, per target domain, the validation metric
    (``valid_metric``) of each on all cases and, with never-trained items, on the cases whose
    target is one with a content vector (None without), from one pass."""
    profile = trainer.model.content_profile
    settings = profile_settings(trainer.config, profile)
    counter = SettingTies(trainer.eval_collector, profile, settings)
    trainer.eval_collector, profile.recorded = counter, []
    try:
        trainer.evaluate(valid_data, load_best_model=False)
    finally:
        trainer.eval_collector, profile.recorded = counter.collector, None

    def table(cold_targets: bool) -> list[list[float]]:
        return [
            [
                counter.metric(domain, index, trainer.valid_metric, trainer.config, cold_targets)
                for index in range(len(settings))
            ]
            for domain in range(len(trainer.model.domain_names))
        ]

    return settings, table(False), None if profile.cold_items is None else table(True)


def set_profile(profile, domain: int, setting: Setting) -> None:
    profile.chosen.fill_(True)
    for name, value in setting._asdict().items():
        if value is not None:
            getattr(profile, name)[domain] = value


def describe(setting: Setting) -> str:
    text = f"scale {setting.scale:g}"
    if setting.cold_scale is not None:
        text += f", cold items {setting.cold_scale:g} * cosine {setting.cold_offset:+g}"
    if setting.warm_temperature is not None:
        text += (
            f", experts: trained / {setting.warm_temperature:g}, cold cosine / "
            f"{setting.cold_temperature:g}, log prior {setting.cold_offset:+g}"
        )
    return text


# Per case, ``[h, e, positives]`` under every setting: ``[cases, settings, 3]``, and whether its
# target was never a training target and has content to be ranked by: ``[cases]``. rec.* keys of
# the collector's struct, so that a multi-process evaluation gathers them with the ties
# (trainer/distributed.py: gather_cases) and every process chooses from all cases.
SETTING_TIES = "rec.profile_setting_ties"
COLD_WITH_CONTENT = "rec.profile_cold_target_with_content"


class SettingTies:
    """The trainer's collector for the choosing pass: it collects as before, and also counts each
    case's :data:`SETTING_TIES`, per target domain (one evaluated part at a time)."""

    def __init__(self, collector, profile, settings: list[Setting]):
        self.collector, self.profile, self.settings = collector, profile, settings
        # the never-trained items content can rank (content_profile_cold_tolerance)
        self.with_content = None if profile.cold_items is None else profile.items_with_content()
        self.parts: list[tuple[int, DataStruct]] = []  # (domain, the part's struct)
        self._domain: int | None = None

    def __getattr__(self, name):  # everything else is the wrapped collector's
        return getattr(self.collector, name)

    def eval_batch_collect(self, scores, interaction, positive_u, positive_i):
        self.collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
        blocks = [block for block in self.profile.recorded if len(block[3])]  # rows scored
        self.profile.recorded.clear()
        if len(blocks) != 1:
            raise RuntimeError(
                "choosing the content profile needs one target domain per evaluation batch "
                f"(the domain-aware trainer's); got {len(blocks)}"
            )
        self._domain, items, domain_scores, cosines = blocks[0]
        batch = CaseScores(scores, items, cosines, self.profile.cold_items, positive_u, positive_i)
        if self.profile.mixture:
            batch.normalise_over(domain_scores, cosines, self.profile.cold_items[items])
        ties = torch.stack([batch.ties(setting) for setting in self.settings], 1)
        self.collector.data_struct.update_tensor(SETTING_TIES, ties)
        if self.with_content is not None:
            with_content = self.with_content[positive_i.to(self.with_content.device)]
            self.collector.data_struct.update_tensor(
                COLD_WITH_CONTENT, batch.target_cold & with_content
            )

    def get_data_struct(self):
        """The wrapped collector's struct, kept with its part's domain: the evaluator may gather
        it across processes in place after this returns."""
        struct = self.collector.get_data_struct()
        if SETTING_TIES in self.collector.data_struct:  # not carried into the next part
            for key in (SETTING_TIES, COLD_WITH_CONTENT):
                if key in self.collector.data_struct:
                    del self.collector.data_struct[key]
            self.parts.append((self._domain, struct))
        return struct

    def metric(
        self, domain: int, index: int, metric: str, config, cold_targets: bool = False
    ) -> float:
        """``metric`` (RecBole's name, such as fullmrr or ndcg@10) of ``domain``'s cases under
        setting ``index`` (with ``cold_targets``, of those whose target was never a training
        target and has a content vector), computed by the evaluator's own metric class."""
        parts = [struct for part, struct in self.parts if part == domain]
        ties = [struct[SETTING_TIES][:, index] for struct in parts]
        if cold_targets:
            ties = [part_ties[struct[COLD_WITH_CONTENT]] for part_ties, struct in zip(ties, parts)]
        ties = torch.cat(ties).cpu() if ties else torch.empty(0, 3)
        if not len(ties):  # no such validation case in this domain
            return float("-inf")
        struct = DataStruct()
        struct.set(TIES, ties)
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
        self._domain_rows = None
        self._cached_norms: dict[tuple, torch.Tensor] = {}  # each expert's, once per batch

    def normalise_over(self, scores, cosines, cold) -> None:
        """The mixture's experts are normalised over every item of the domain: keep the
        model's unmasked ``scores`` and ``cosines`` of them (``[B, n_d]``) and ``cold`` (``[n_d]``)."""
        self._domain_rows = (scores, cosines, cold)

    def _norms(self, setting: Setting) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per case, the log-normalisers of the mixture's two experts under ``setting``: the
        trained items' depends on the scale and t_w only, the never-trained ones' on t_c."""
        if setting.warm_temperature is None:
            return None
        scores, cosines, cold = self._domain_rows
        warm_key = ("warm", setting.scale, setting.warm_temperature)
        cold_key = ("cold", setting.cold_temperature)
        if warm_key not in self._cached_norms or cold_key not in self._cached_norms:
            fused = fuse(scores, cosines, None, setting)  # the trained expert's score
            warm, content = mixture_logits(fused, cosines, setting)
            if warm_key not in self._cached_norms:
                warm = warm.masked_fill(cold, float("-inf"))
                self._cached_norms[warm_key] = torch.logsumexp(warm, 1, keepdim=True)
            if cold_key not in self._cached_norms:
                content = content.masked_fill(~cold, float("-inf"))
                self._cached_norms[cold_key] = torch.logsumexp(content, 1, keepdim=True)
        return self._cached_norms[warm_key], self._cached_norms[cold_key]

    def ties(self, setting: Setting) -> torch.Tensor:
        """``[P 3]``: per positive, the candidates scored above it, equal to it (itself
        included) and the positives of its case, under ``setting``."""
        norms = self._norms(setting)
        fused = fuse(self.scores, self.cosines, self.cold, setting, norms)
        if self.present is not None:
            fused = fused.masked_fill(~self.present, float("-inf"))
        target_norms = None if norms is None else tuple(norm[self.rows, 0] for norm in norms)
        target = fuse(*self.target, self.target_cold, setting, target_norms)
        target = target.unsqueeze(1)
        rows = fused[self.rows]
        positives = torch.bincount(self.rows, minlength=len(fused))[self.rows]
        return torch.stack([(rows > target).sum(1), (rows == target).sum(1), positives], 1)


def fuse(scores, cosines, cold, setting: Setting, norms=None) -> torch.Tensor:
    """ContentProfile.forward's arithmetic, term for term, for one setting; ``norms``: the
    mixture's per-case log-normalisers (``[B 1]``, or ``[B]`` for one item per row)."""
    scale = torch.tensor(setting.scale, dtype=scores.dtype, device=scores.device)
    fused = scores + scale * cosines
    if cold is None:
        return fused
    offset = torch.tensor(setting.cold_offset, dtype=scores.dtype, device=scores.device)
    if setting.warm_temperature is None:
        cold_scale = torch.tensor(setting.cold_scale, dtype=scores.dtype, device=scores.device)
        return torch.where(cold, cold_scale * cosines + offset, fused)
    warm, content = mixture_logits(fused, cosines, setting)
    warm_norm, content_norm = norms
    return torch.where(cold, content - content_norm + offset, warm - warm_norm)


def mixture_logits(fused, cosines, setting: Setting) -> tuple[torch.Tensor, torch.Tensor]:
    """The experts' logits before normalising, as content_profile.mixture_scores computes them."""
    warm = torch.tensor(setting.warm_temperature, dtype=fused.dtype, device=fused.device)
    cold = torch.tensor(setting.cold_temperature, dtype=fused.dtype, device=fused.device)
    return fused / warm, cosines / cold
