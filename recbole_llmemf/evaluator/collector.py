"""Every ranking metric from one rank per test case: RecBole's collector and evaluator with the
tie-expected metric classes of metrics.py, plus the per-case ranks that the paired tests read."""

from __future__ import annotations

import numpy as np
import torch
from recbole.evaluator import Collector, Evaluator
from recbole.evaluator.register import Register

from recbole_llmemf.evaluator.metrics import TIES, expected_metric_class

CASE_IDS = "rec.case_ids"  # [P 2] user and item id of each positive's case


class TieRegister(Register):
    """RecBole's register of what to collect, read from the classes :class:`TieEvaluator` uses."""

    def _build_register(self):
        for metric in self.metrics:
            for info in expected_metric_class(metric).metric_need:
                setattr(self, info, True)


class TieEvaluator(Evaluator):
    """RecBole's evaluator with the tie-expected classes of metrics.py under RecBole's names."""

    def __init__(self, config):
        super().__init__(config)
        self.metric_class = {name: expected_metric_class(name)(config) for name in self.metrics}


class TieCollector(Collector):
    """RecBole's collector, plus ``rec.ties`` (h, e per positive) and a sort-free ``rec.meanrank``.

    RecBole sorts every score row to rank the positives (collector.py L166). On a 100k-item
    catalog that sort is most of the evaluation time of every model; counting gives the same values.
    """

    def __init__(self, config):
        super().__init__(config)
        self.register = TieRegister(config)
        self._case_ids: list[torch.Tensor] = []
        self._last_struct = None  # the last evaluation's, gathered over processes where it was

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        counted = [key for key in ("rec.meanrank", TIES) if self.register.need(key)]
        for key in counted:  # RecBole's collector would sort for rec.meanrank; we count instead
            setattr(self.register, key, False)
        try:
            super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        finally:
            for key in counted:
                setattr(self.register, key, True)
        if not counted:
            return
        refuse_nan_targets(self.config, interaction, scores_tensor, positive_u, positive_i)
        higher, equal = tie_counts(scores_tensor, positive_u, positive_i)
        positive_u = positive_u.to(scores_tensor.device)
        positives = torch.bincount(positive_u, minlength=len(scores_tensor))
        if TIES in counted:
            ties = torch.stack([higher, equal, positives[positive_u]], 1)  # [P 3]
            self.data_struct.update_tensor(TIES, ties)
            self._case_ids.append(
                case_ids(self.config, interaction, scores_tensor, positive_u, positive_i)
            )
        if "rec.meanrank" in counted:
            self.data_struct.update_tensor(
                "rec.meanrank", mean_rank(scores_tensor, positive_u, higher, equal, positives)
            )

    def get_data_struct(self):
        struct = super().get_data_struct()
        self._last_struct = None
        if TIES in self.data_struct:  # per evaluation, as RecBole resets its own rec.* keys
            # a rec.* key, so that multi-process evaluation gathers it with the ties
            # (trainer/distributed.py: gather_cases works on the struct in place)
            struct[CASE_IDS] = torch.cat(self._case_ids).cpu()
            self._last_struct = struct
            del self.data_struct[TIES]
        self._case_ids = []
        return struct

    @property
    def last_cases(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The last evaluation's ``([P 2] user and item ids, [P 3] ties)``, of every process."""
        if self._last_struct is None:
            return None
        return self._last_struct[CASE_IDS], self._last_struct[TIES]


def refuse_nan_targets(config, interaction, scores, positive_u, positive_i) -> None:
    """A NaN target score has no rank (every comparison with it is False, so it would count as
    ranked first among ties with nothing): an error naming the model and the case."""
    target = scores[positive_u.to(scores.device), positive_i.to(scores.device)]
    bad = torch.nonzero(torch.isnan(target)).flatten()
    if len(bad):
        user, item = case_ids(config, interaction, scores, positive_u, positive_i)[bad[0]].tolist()
        raise ValueError(
            f"{config['model']} scored the target of {len(bad)} test case(s) NaN, the first: user "
            f"id {user}, target item id {item}; a NaN score has no rank"
        )


def case_ids(config, interaction, scores, positive_u, positive_i) -> torch.Tensor:
    """``[P 2]`` (user id, target id) per positive; user -1 where the batch has no row per case
    (RecBole's own ``predict`` path of sampled candidates, one row per (case, candidate)) or none."""
    uid_field = config["USER_ID_FIELD"]
    positive_u = positive_u.to(scores.device)
    if interaction is not None and uid_field in interaction and len(interaction) == len(scores):
        users = interaction[uid_field].to(scores.device)[positive_u]
    else:
        users = torch.full_like(positive_u, -1)
    return torch.stack([users, positive_i.to(scores.device)], 1)


def case_table(dataset, parts: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, np.ndarray]:
    """One domain's cases as arrays: ``user``, ``item`` (tokens), ``higher``, ``equal`` (metrics.py)."""
    ids = torch.cat([part[0] for part in parts]).numpy()
    ties = torch.cat([part[1] for part in parts]).numpy()
    users = np.full(len(ids), "", dtype=object)
    known = ids[:, 0] >= 0
    users[known] = dataset.id2token(dataset.uid_field, ids[known, 0])
    return {
        "user": users.astype(str),
        "item": np.asarray(dataset.id2token(dataset.iid_field, ids[:, 1])).astype(str),
        "higher": ties[:, 0].astype(np.int64),
        "equal": ties[:, 1].astype(np.int64),
    }


def tie_counts(
    scores: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per positive: candidates scored above it (h) and equal to it, itself included (e)."""
    positive_u = positive_u.to(scores.device)
    target = scores[positive_u, positive_i.to(scores.device)].unsqueeze(1)  # [P 1]
    one_per_row = len(positive_u) == len(scores) and bool(
        (positive_u == torch.arange(len(scores), device=scores.device)).all()
    )
    rows = scores if one_per_row else scores[positive_u]  # [P n], no copy for one positive per row
    return (rows > target).sum(1), (rows == target).sum(1)


def mean_rank(
    scores: torch.Tensor,
    positive_u: torch.Tensor,
    higher: torch.Tensor,
    equal: torch.Tensor,
    positives: torch.Tensor,
) -> torch.Tensor:
    """RecBole's ``rec.meanrank`` rows ``[sum of positive ranks, user_len, number of positives]``.

    A positive's rank, ties averaged as RecBole does, is ``higher + (equal + 1) / 2``;
    ``user_len`` is the number of items above the row's minimum (RecBole: argmin of the descending
    sort).
    """
    rank = (higher + (equal + 1) / 2).to(scores.dtype)
    rank_sum = scores.new_zeros(len(scores)).index_add_(0, positive_u, rank)
    user_len = (scores > scores.min(dim=1, keepdim=True).values).sum(1)
    return torch.stack([rank_sum, user_len.to(scores.dtype), positives.to(scores.dtype)], 1)
