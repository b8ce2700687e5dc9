"""Paired significance tests between two runs over the same test cases.

Each run keeps, per target domain, one ``(h, e)`` per test case (recbole_llmemf/evaluator/metrics.py: ``h``
candidates scored above the target, ``e`` scored equal to it, itself included), keyed by the case's
user and target tokens. From them come the per-case values whose means are the reported metrics
(tie-expected reciprocal rank and NDCG@10), so a paired test compares exactly what the table shows.
Several seeds of one row are first averaged per case, so a case counts once. Where both rows have
several seeds, a Welch t-test over the seeds' scores also asks whether the difference is larger
than what another seed would change.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from scipy.special import digamma

from recbole_llmemf.evaluator.metrics import NDCG

# The metrics tested, as named in the result keys.
TESTED = ("fullmrr", "ndcg@10")


def per_case_values(higher: np.ndarray, equal: np.ndarray) -> dict[str, np.ndarray]:
    """Per case, the tie-expected reciprocal rank (untruncated) and NDCG@10 (one positive)."""
    higher, equal = np.asarray(higher, np.float64), np.asarray(equal, np.float64)
    reciprocal = (digamma(higher + equal + 1) - digamma(higher + 1)) / equal
    ndcg = NDCG.per_positive(None, higher, equal, np.ones_like(higher), 10)  # reads no state
    return {"fullmrr": reciprocal, "ndcg@10": ndcg}


def mean_over_seeds(runs: list[dict[str, np.ndarray]]) -> dict[tuple[str, str], dict[str, float]]:
    """``{(user, target): {metric: mean over the runs that hold the case}}`` from case tables
    (``user``, ``item``, ``higher``, ``equal`` arrays, evaluation.case_table)."""
    sums: dict[tuple[str, str], list] = {}
    for cases in runs:
        values = per_case_values(cases["higher"], cases["equal"])
        for row, key in enumerate(zip(cases["user"].tolist(), cases["item"].tolist())):
            total = sums.setdefault(key, [0, np.zeros(len(TESTED))])
            total[0] += 1
            total[1] += [values[metric][row] for metric in TESTED]
    return {
        key: dict(zip(TESTED, (vector / count).tolist())) for key, (count, vector) in sums.items()
    }


def paired_p_value(first: np.ndarray, second: np.ndarray) -> float:
    """Two-sided paired t-test; 1.0 where the two agree on every case (no difference to test)."""
    difference = np.asarray(first, np.float64) - np.asarray(second, np.float64)
    if len(difference) < 2 or not difference.any():
        return 1.0
    if np.all(difference == difference[0]):  # a constant non-zero shift: no variance, certain
        return 0.0
    return float(stats.ttest_rel(first, second).pvalue)


def welch_p_value(first: list[float], second: list[float]) -> float:
    """Two-sided Welch t-test; as ``paired_p_value`` where neither row varies over its seeds."""
    if np.var(first) == 0 and np.var(second) == 0:
        return 1.0 if np.mean(first) == np.mean(second) else 0.0
    with warnings.catch_warnings():
        # a deterministic model (ItemKNN) scores the same at every seed; scipy then warns of
        # "precision loss" although a variance of 0 is exact and the other row's carries the test
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        return float(stats.ttest_ind(first, second, equal_var=False).pvalue)


def seed_scores(runs: list[dict], keys: set) -> dict[str, list[float]]:
    """Per metric, each run's mean over the cases in ``keys``."""
    scores: dict[str, list[float]] = {metric: [] for metric in TESTED}
    for cases in runs:
        values = per_case_values(cases["higher"], cases["equal"])
        shared = [key in keys for key in zip(cases["user"].tolist(), cases["item"].tolist())]
        for metric in TESTED:
            scores[metric].append(float(values[metric][shared].mean()))
    return scores


def compare(first: list[dict], second: list[dict]) -> dict:
    """Paired tests of two rows (each a list of per-seed case tables of one domain) over the cases
    both hold: ``{"cases": n, "<metric>_p": p, "<metric>_difference": mean(first - second)}``,
    and ``"<metric>_seeds_p"`` (Welch, over the seeds' scores) where both rows have 2 seeds or
    more."""
    a, b = mean_over_seeds(first), mean_over_seeds(second)
    keys = [key for key in a if key in b and key[0]]  # cases without a user token cannot pair
    result: dict = {"cases": len(keys)}
    for metric in TESTED:
        x = np.array([a[key][metric] for key in keys])
        y = np.array([b[key][metric] for key in keys])
        result[f"{metric}_p"] = paired_p_value(x, y)
        result[f"{metric}_difference"] = float((x - y).mean()) if keys else float("nan")
    if len(first) > 1 and len(second) > 1 and keys:
        shared = set(keys)
        x_seeds, y_seeds = seed_scores(first, shared), seed_scores(second, shared)
        for metric in TESTED:
            result[f"{metric}_seeds_p"] = welch_p_value(x_seeds[metric], y_seeds[metric])
    return result


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN, an untested pair, left as is):
    the k-th smallest of m is multiplied by m - k + 1, made monotone and capped at 1. It keeps
    the chance of any false "differs" in the family at the nominal level."""
    order = [i for i in np.argsort(p_values) if not np.isnan(p_values[i])]
    adjusted = list(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
