"""benchmarks/target_groups.py: a benchmark's per-case ranks split by warm/cold and feature coverage."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recbole_llmemf.bench.report import case_key

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "target_groups.py"
ITEMS = ["w1", "w2", "c1", "c2"]  # warm with a vector, warm without, cold with, cold without
PER_ITEM = 40


def load_script():
    spec = importlib.util.spec_from_file_location("target_groups", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def finished_bench(tmp_path) -> tuple[Path, Path]:
    """A dataset folder (training targets w1, w2; vectors for w1, c1) and a results stem with rows
    A (2 seeds) and B (1 seed); B ranks the warm targets with a vector 5 places lower."""
    data = tmp_path / "toy"
    data.mkdir()
    (data / "toy.train.inter").write_text(
        "user_id:token\titem_id_list:token_seq\titem_id:token\nu\tw2\tw1\nv\tw1\tw2\n"
    )
    (data / "toy.itememb_txt").write_text(
        "item_id:token\ttxt_emb:float_seq\nw1\t0.6 0.8\nc1\t1 0\n"
    )
    items = np.repeat(ITEMS, PER_ITEM)
    users = np.array([f"u{i}" for i in range(len(items))])
    rng = np.random.default_rng(0)
    arrays = {}
    for label, seed in [("A", 1), ("A", 2), ("B", 1)]:
        higher = rng.integers(0, 4, len(items))
        if label == "B":
            higher = higher + 5 * (items == "w1")
        table = {"user": users, "item": items, "higher": higher, "equal": np.ones(len(items), int)}
        arrays.update({case_key(label, seed, "Food", k): v for k, v in table.items()})
    stem = tmp_path / "toy-sampled999"
    np.savez_compressed(tmp_path / "toy-sampled999.cases.npz", **arrays)
    return stem, data


def test_groups_follow_the_training_targets_and_the_feature_file(finished_bench):
    stem, data = finished_bench
    script = load_script()
    assert script.training_targets(data) == {"w1", "w2"}
    groups = script.group_of(np.array(ITEMS), {"w1", "w2"}, {"w1", "c1"})
    assert [script.GROUPS[g] for g in groups] == list(script.GROUPS)


def test_scores_are_per_case_means_over_seeds_and_only_the_shifted_group_differs(finished_bench):
    stem, data = finished_bench
    script = load_script()
    cases = script.read_cases(stem.with_name(stem.name + ".cases.npz"))
    table = script.group_table(cases, {"w1", "w2"}, {"w1", "c1"}, reference="A")["Food"]
    for index, group in enumerate(script.GROUPS):
        assert table[group]["cases"] == PER_ITEM
        in_group = slice(index * PER_ITEM, (index + 1) * PER_ITEM)
        expected = np.mean([1 / (cases[("A", s)]["Food"]["higher"][in_group] + 1) for s in (1, 2)])
        assert table[group]["A"]["fullmrr"] == pytest.approx(expected)
        assert "fullmrr_p" not in table[group]["A"]  # the reference is not tested against itself
    assert table["warm, with vector"]["B"]["fullmrr_p"] < 0.05
    assert table["warm, with vector"]["B"]["fullmrr"] < table["warm, with vector"]["A"]["fullmrr"]
    assert all(table[g]["B"]["fullmrr_p"] > 0.05 for g in script.GROUPS[1:])


def test_seeds_keep_only_their_runs(finished_bench):
    stem, _data = finished_bench
    script = load_script()
    cases = script.read_cases(stem.with_name(stem.name + ".cases.npz"))
    table = script.group_table(script.of_seeds(cases, {2}), {"w1", "w2"}, {"w1", "c1"}, "A")
    expected = np.mean(1 / (cases[("A", 2)]["Food"]["higher"][:PER_ITEM] + 1))
    assert table["Food"]["warm, with vector"]["A"]["fullmrr"] == pytest.approx(expected)
    assert "B" not in table["Food"]["warm, with vector"]  # B has no seed 2
    assert script.of_seeds(cases, set()) == cases


def test_the_command_prints_a_table_per_domain_and_refuses_missing_inputs(finished_bench):
    stem, data = finished_bench
    run = [sys.executable, str(SCRIPT), str(stem), str(data), "--reference", "A"]
    printed = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert f"| row | warm, with vector ({PER_ITEM}) |" in printed
    assert printed.count("| B | ") == 1 and "†" in printed.split("| B | ")[1].split(" | ")[0]
    first_seed = subprocess.run(run + ["--seeds", "1"], capture_output=True, text=True, check=True)
    assert first_seed.stdout != printed  # A's second seed is left out
    failed = subprocess.run(run + ["--seeds", "3"], capture_output=True, text=True)
    assert failed.returncode != 0 and "no run with seeds [3]; seeds: [1, 2]" in failed.stderr
    failed = subprocess.run(run + ["--seeds", "x"], capture_output=True, text=True)
    assert failed.returncode != 0 and "invalid seed_set value: 'x'" in failed.stderr
    failed = subprocess.run(run[:-1] + ["C"], capture_output=True, text=True)
    assert failed.returncode != 0 and "no row 'C'; rows: A, B" in failed.stderr
    (data / "toy.train.inter").unlink()
    failed = subprocess.run(run, capture_output=True, text=True)
    assert failed.returncode != 0 and "split layout" in failed.stderr
