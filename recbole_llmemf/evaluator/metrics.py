"""Ranking metrics from one rank per test case, ties resolved by their expectation.

RecBole's top-k metrics (Hit, MRR, NDCG, Recall, Precision, MAP) read ``torch.topk`` of the scores,
which puts the lowest item ids first among equal scores; RecBole numbers items by first appearance,
so a tie favours popular targets, and a model that gives every candidate the same score reaches
far above chance. The metrics here read, for each positive, ``h`` (candidates scored above it) and
``e`` (candidates scored equal to it, itself included) and report the exact expectation over a
uniformly random order of the tied candidates: the positive's position ``j`` is uniform on
``h + 1 .. h + e``, so its reciprocal rank is ``mean(1 / j)``, its NDCG@k gain
``mean(1 / log2(j + 1) if j <= k else 0)`` and its Hit@k ``P(j <= k)``. Deterministic, no seed, and
a constant scorer gets chance. The domain-aware trainer (trainer/domain_aware.py) uses these classes under the
usual names where the config uses the plugin's options; RecBole's own classes stay registered for
everything else. ``FullMRR`` (untruncated MRR, as the paper reports it) is registered with RecBole's
tables, so ``metrics: [FullMRR]`` is accepted by ``Config``.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.evaluator import register as metric_register
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType

# The collected data: one row [h, e, positives of its case] per positive (evaluation.TieCollector).
TIES = "rec.ties"


class FullMRR(AbstractMetric):
    r"""Mean reciprocal rank of the positive item over the whole candidate list (no cut-off).

    Outside the plugin's options it reads RecBole's ``rec.meanrank`` (ties take their average rank);
    the domain-aware trainer computes it as :class:`ExpectedFullMRR`. With one positive per test
    case, as in leave-one-out and the C2DSR splits, this is :math:`\frac{1}{|U|}\sum_u 1/rank_u`;
    with several, the mean rank of the positives stands in for the rank.
    """

    metric_type = EvaluatorType.RANKING
    metric_need = ["rec.meanrank"]

    def calculate_metric(self, dataobject) -> dict:
        pos_rank_sum, _, pos_len = np.split(dataobject.get("rec.meanrank").numpy(), 3, axis=1)
        reciprocal = pos_len.squeeze(-1) / pos_rank_sum.squeeze(-1)
        return {"fullmrr": round(float(reciprocal.mean()), self.decimal_place)}


class _Expected(AbstractMetric):
    """Base of the tie-expected metrics: reads ``h``, ``e`` and the case's positives per positive."""

    metric_type = EvaluatorType.RANKING
    metric_need = [TIES]
    name = ""
    single_positive = True  # the metric is not linear in the positives: one per case is needed

    def __init__(self, config):
        super().__init__(config)
        self.topk = config["topk"]

    def calculate_metric(self, dataobject) -> dict:
        higher, equal, positives = dataobject.get(TIES).double().numpy().T
        if self.single_positive and (positives > 1).any():
            raise ValueError(
                f"metric '{self.name}' under the expected tie rule needs one positive per test case; "
                f"{int((positives > 1).sum())} positives share a case with another"
            )
        return self.values(higher, equal, positives)

    def values(self, higher: np.ndarray, equal: np.ndarray, positives: np.ndarray) -> dict:
        cases = (1 / positives).sum()
        result = {}
        for k in self.topk:
            value = self.per_positive(higher, equal, positives, k).sum() / cases
            result[f"{self.name}@{k}"] = round(float(value), self.decimal_place)
        return result

    def per_positive(self, higher, equal, positives, k: int) -> np.ndarray:
        raise NotImplementedError


def share_within(higher: np.ndarray, equal: np.ndarray, k: int) -> np.ndarray:
    """P(j <= k) for j uniform on h + 1 .. h + e."""
    return np.clip(k - higher, 0, equal) / equal


def mean_over_ties(prefix: np.ndarray, higher: np.ndarray, equal: np.ndarray, k: int) -> np.ndarray:
    """mean over j in h + 1 .. h + e of ``g(j) if j <= k else 0``, where ``prefix[m] = sum g(1..m)``."""
    top = np.minimum(higher + equal, k).astype(np.int64)
    start = np.minimum(higher, k).astype(np.int64)
    return (prefix[top] - prefix[start]) / equal


def _prefix(k: int, gain) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(gain(np.arange(1, k + 1, dtype=np.float64)))])


class Hit(_Expected):
    name = "hit"

    def per_positive(self, higher, equal, positives, k):
        return share_within(higher, equal, k)


class Recall(_Expected):
    name = "recall"
    single_positive = False  # linear: expected hits in the top k over the case's positives

    def per_positive(self, higher, equal, positives, k):
        return share_within(higher, equal, k) / positives


class Precision(_Expected):
    name = "precision"
    single_positive = False

    def per_positive(self, higher, equal, positives, k):
        return share_within(higher, equal, k) / k


class MRR(_Expected):
    name = "mrr"

    def per_positive(self, higher, equal, positives, k):
        return mean_over_ties(_prefix(k, np.reciprocal), higher, equal, k)


class MAP(MRR):
    """With one positive per case, average precision at k is the reciprocal rank within k."""

    name = "map"


class NDCG(_Expected):
    name = "ndcg"
    single_positive = False  # DCG is linear in the positives; the ideal DCG depends on their count

    def per_positive(self, higher, equal, positives, k):
        discount = _prefix(k, lambda j: 1 / np.log2(j + 1))
        ideal = discount[np.minimum(positives, k).astype(np.int64)]
        return mean_over_ties(discount, higher, equal, k) / ideal


class ExpectedFullMRR(_Expected):
    """Untruncated: mean(1 / j) over h + 1 .. h + e = (H(h + e) - H(h)) / e, H by digamma."""

    name = "fullmrr"

    def values(self, higher, equal, positives):
        high, tied = torch.from_numpy(higher), torch.from_numpy(equal)
        expected = (torch.digamma(high + tied + 1) - torch.digamma(high + 1)) / tied
        return {"fullmrr": round(float(expected.mean()), self.decimal_place)}


# RecBole's metric name -> the tie-expected class the domain-aware trainer computes it with.
EXPECTED_METRICS = {
    cls.name: cls for cls in (Hit, Recall, Precision, MRR, MAP, NDCG, ExpectedFullMRR)
}


def expected_metric_class(name: str) -> type:
    """The class the domain-aware trainer uses for ``name``: ours where ties matter, else RecBole's."""
    name = name.lower()
    return EXPECTED_METRICS.get(name, metric_register.metrics_dict[name])
