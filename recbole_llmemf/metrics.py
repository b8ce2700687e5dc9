"""Untruncated MRR, as the paper reports it; RecBole's own ``MRR`` is MRR@k."""

from __future__ import annotations

import numpy as np
from recbole.evaluator import register as metric_register
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType


class FullMRR(AbstractMetric):
    r"""Mean reciprocal rank of the positive item over the whole candidate list (no cut-off).

    Uses RecBole's ``rec.meanrank`` (ties take their average rank). With one positive per test
    case, as in leave-one-out and the C2DSR splits, this is :math:`\frac{1}{|U|}\sum_u 1/rank_u`;
    with several, the mean rank of the positives stands in for the rank.
    """

    metric_type = EvaluatorType.RANKING
    metric_need = ["rec.meanrank"]

    def calculate_metric(self, dataobject) -> dict:
        pos_rank_sum, _, pos_len = np.split(dataobject.get("rec.meanrank").numpy(), 3, axis=1)
        reciprocal = pos_len.squeeze(-1) / pos_rank_sum.squeeze(-1)
        return {"fullmrr": round(float(reciprocal.mean()), self.decimal_place)}


def register_metrics() -> None:
    """Add our metrics to the tables RecBole's Config, Register and Evaluator read by name."""
    name = FullMRR.__name__.lower()
    metric_register.metrics_dict[name] = FullMRR
    metric_register.metric_information[name] = FullMRR.metric_need
    metric_register.metric_types[name] = FullMRR.metric_type
