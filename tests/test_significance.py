"""Paired tests over per-case ranks: significance.py and the marks the benchmark report draws from them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from recbole_llmemf.bench.records import Run
from recbole_llmemf.bench.report import add_significance, aggregate, markdown
from recbole_llmemf.bench.significance import (
    TESTED,
    compare,
    holm,
    paired_p_value,
    per_case_values,
    seed_scores,
    welch_p_value,
)

CASES = 300


def case_table(higher: np.ndarray, users: int = CASES) -> dict[str, np.ndarray]:
    return {
        "user": np.array([f"u{i}" for i in range(users)]),
        "item": np.array([f"i{i % 7}" for i in range(users)]),
        "higher": np.asarray(higher, np.int64),
        "equal": np.ones(users, np.int64),
    }


def ranks(seed: int, shift: int = 0) -> np.ndarray:
    """Candidates above the target, per case: a noisy scorer, ``shift`` places worse."""
    return np.random.default_rng(seed).integers(0, 30, CASES) + shift


def test_per_case_values_are_the_tie_expected_rank_metrics():
    values = per_case_values(np.array([0, 1, 0, 20]), np.array([1, 1, 2, 1]))
    assert np.allclose(values["fullmrr"], [1, 1 / 2, (1 + 1 / 2) / 2, 1 / 21])
    assert np.allclose(values["ndcg@10"], [1, 1 / np.log2(3), (1 + 1 / np.log2(3)) / 2, 0])


def test_clearly_better_scorer_is_significant_and_identical_ones_are_not():
    good = case_table(ranks(0))
    worse = case_table(ranks(0) + np.random.default_rng(1).integers(0, 4, CASES))
    result = compare([good], [worse])
    assert result["cases"] == CASES
    assert result["fullmrr_p"] < 0.05 and result["ndcg@10_p"] < 0.05
    assert result["fullmrr_difference"] > 0
    same = compare([good], [case_table(ranks(0))])
    assert same["fullmrr_p"] == same["ndcg@10_p"] == 1.0
    unrelated = compare([case_table(ranks(2))], [case_table(ranks(3))])  # same quality, noise
    assert unrelated["fullmrr_p"] > 0.05


def test_seeds_are_averaged_per_case_and_only_shared_cases_are_paired():
    # two seeds whose mean per case equals the other row's single run: no difference left
    first, second = ranks(4), ranks(5)
    half = case_table((first + second) // 2)
    assert compare([case_table(first), case_table(second)], [half])["cases"] == CASES
    fewer = case_table(ranks(4)[:100], users=100)
    assert compare([case_table(ranks(4))], [fewer])["cases"] == 100
    assert paired_p_value(np.ones(5), np.zeros(5)) == 0.0  # a constant gain on every case


def test_seed_test_needs_a_gap_larger_than_the_seeds_spread():
    good = [case_table(ranks(seed)) for seed in (10, 11, 12)]
    worse = [case_table(ranks(seed, shift=6)) for seed in (13, 14, 15)]
    alike = [case_table(ranks(seed)) for seed in (16, 17, 18)]
    assert compare(good, worse)["fullmrr_seeds_p"] < 0.05
    assert compare(good, alike)["fullmrr_seeds_p"] > 0.05
    assert "fullmrr_seeds_p" not in compare(good[:1], worse)  # one seed: no spread to test
    assert welch_p_value([0.2, 0.2], [0.1, 0.1]) == 0.0
    assert welch_p_value([0.2, 0.2], [0.2, 0.2]) == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a seed-independent row is no reason to warn
        assert welch_p_value([0.3, 0.3, 0.3], [0.1, 0.12, 0.11]) < 0.05
    shared = {(f"u{i}", f"i{i % 7}") for i in range(100)}
    first_hundred = per_case_values(ranks(10)[:100], np.ones(100))["fullmrr"].mean()
    assert seed_scores(good[:1], shared)["fullmrr"] == [first_hundred]


def run(label: str, model: str, seed: int, higher: np.ndarray, valid: float = 0.1) -> Run:
    values = per_case_values(higher, np.ones_like(higher))
    result = {f"Movie/{metric}": float(v.mean()) for metric, v in values.items()}
    return Run(
        label,
        model,
        seed,
        test_result=result,
        epoch_seconds=[1.0],
        eval_seconds=[0.1],
        valid_scores=[valid],
        cases={"Movie": case_table(higher)},
    )


def test_table_marks_rows_that_differ_from_the_best_llmemf_and_counts_seeds():
    runs = [
        run("LLMEMF", "LLMEMF", 1, ranks(0)),
        run("LLMEMF", "LLMEMF", 2, ranks(0)),
        run("LLMEMF-ids", "LLMEMF", 1, ranks(0) + 1),  # an ablation, close to the full model
        run("SASRec", "SASRec", 1, ranks(0) + 5),
        run("Twin", "Twin", 1, ranks(0)),
    ]
    table = aggregate(runs)
    add_significance(table, runs, ["Movie"])
    assert table["SASRec"]["significance"]["Movie"]["against"] == "LLMEMF"
    assert table["SASRec"]["significance"]["Movie"]["fullmrr_p"] < 0.05
    assert table["Twin"]["significance"]["Movie"]["fullmrr_p"] == 1.0
    assert "significance" not in table["LLMEMF"]
    movie = markdown(table, runs, ["Movie"], "").split("### Cost")[0].splitlines()
    rows = {line.split(" | ")[0][2:]: line for line in movie if line.startswith("| ")}
    assert rows["LLMEMF"].startswith("| LLMEMF | 2 | ") and "†" not in rows["LLMEMF"]
    assert rows["SASRec"].startswith("| SASRec | 1 | ") and rows["SASRec"].count("†") == 2
    assert "†" not in rows["Twin"]
    # three rows tested on two metrics: six tests in the table's Holm family
    tests = [table[label]["significance"]["Movie"] for label in ("LLMEMF-ids", "SASRec", "Twin")]
    raw = [test[f"{metric}_p"] for test in tests for metric in TESTED]
    assert [test[f"{metric}_p_holm"] for test in tests for metric in TESTED] == holm(raw)
    (line,) = [row for row in movie if row.startswith("Holm-adjusted p")]
    assert line.startswith("Holm-adjusted p over this table's 6 tests: LLMEMF-ids MRR ")
    assert "Twin NDCG@10 1" in line


def test_holm_multiplies_the_kth_smallest_by_m_minus_k_plus_1_monotone_and_skips_nan():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, float("nan"), 0.4]) == pytest.approx([0.8, float("nan"), 0.8], nan_ok=True)
    assert holm([0.9, 0.8]) == [1.0, 1.0]


def test_reference_row_is_the_full_model_or_the_best_on_validation_never_on_test():
    lucky = ranks(0)  # the best on test, but not the full model
    runs = [
        run("LLMEMF", "LLMEMF", 1, lucky + 3, valid=0.05),  # the full model wins even so
        run("LLMEMF-ids", "LLMEMF", 1, lucky, valid=0.1),
        run("SASRec", "SASRec", 1, lucky + 3),
    ]
    table = aggregate(runs)
    add_significance(table, runs, ["Movie"])
    assert table["LLMEMF-ids"]["significance"]["Movie"]["against"] == "LLMEMF"
    assert table["SASRec"]["significance"]["Movie"]["fullmrr_p"] == 1.0  # same ranks as LLMEMF

    variants = [
        run("LLMEMF-ids", "LLMEMF", 1, lucky, valid=0.1),
        run("LLMEMF-text", "LLMEMF", 1, lucky + 3, valid=0.2),
        run("SASRec", "SASRec", 1, lucky + 3),
    ]
    table = aggregate(variants)
    add_significance(table, variants, ["Movie"])
    assert table["LLMEMF-ids"]["significance"]["Movie"]["against"] == "LLMEMF-text"
    assert "significance" not in table["LLMEMF-text"]
