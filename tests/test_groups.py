"""bench/groups.py: every benchmark's test cases grouped by the target's training interactions and
content, with the paired tests per group."""

from __future__ import annotations

import numpy as np
import pytest

from recbole_llmemf.bench.groups import content_items, group_lines, group_names, group_table
from recbole_llmemf.bench.records import Run

# one item per group: its training interactions, and whether it has a vector
ITEMS = {"z1": (0, True), "z2": (0, False), "a1": (2, True), "b1": (5, True), "c1": (40, True)}
PER_ITEM = 40


@pytest.fixture
def runs() -> list[Run]:
    """Rows A (2 seeds) and B (1 seed) on the same cases; B ranks target c1 5 places lower."""
    items = np.repeat(list(ITEMS), PER_ITEM)
    counts = np.array([ITEMS[item][0] for item in items])
    users = np.array([f"u{i}" for i in range(len(items))])
    rng = np.random.default_rng(0)
    made = []
    for label, seed in [("A", 1), ("A", 2), ("B", 1)]:
        higher = rng.integers(0, 4, len(items)) + 5 * ((label == "B") & (items == "c1"))
        cases = {
            "user": users,
            "item": items,
            "higher": higher,
            "equal": np.ones(len(items), int),
            "train_count": counts,
        }
        made.append(Run(label, "LLMEMF", seed, cases={"Food": cases}))
    return made


def test_content_items_are_read_from_the_feature_files(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    assert content_items(folder) is None
    (folder / "toy.itememb_txt").write_text("item_id:token\ttxt_emb:float_seq\nz1\t0.6 0.8\n")
    (folder / "toy.itememb_img").write_text("item_id:token\timg_emb:float_seq\na1\t1 0\n")
    assert content_items(folder) == {"z1", "a1"}


def test_groups_are_per_case_means_and_only_the_shifted_group_differs(runs):
    content = {item for item, (_, has) in ITEMS.items() if has}
    table = group_table(runs, content, reference="A")["Food"]
    expected_groups = ["0 train, content", "0 train, none", "1-2 train, content",
                       "3-9 train, content", "10+ train, content"]  # fmt: skip
    filled = [g for g in group_names(True) if table[g]["cases"]]
    assert filled == expected_groups
    for index, group in enumerate(expected_groups):
        assert table[group]["cases"] == PER_ITEM
        rows = slice(index * PER_ITEM, (index + 1) * PER_ITEM)
        higher = [run.cases["Food"]["higher"][rows] for run in runs if run.label == "A"]
        assert table[group]["A"]["fullmrr"] == pytest.approx(np.mean([1 / (h + 1) for h in higher]))
        assert "fullmrr_p" not in table[group]["A"]  # the reference is not tested against itself
    shifted = table["10+ train, content"]["B"]
    assert (
        shifted["fullmrr_p"] < 0.05
        and shifted["fullmrr"] < table["10+ train, content"]["A"]["fullmrr"]
    )
    assert all(table[g]["B"]["fullmrr_p"] > 0.05 for g in expected_groups[:-1])
    lines = "\n".join(group_lines({"Food": table}))
    assert "| model | 0 train, content (40) | 0 train, none (40) |" in lines
    row_a, row_b = (line for line in lines.splitlines() if line.startswith(("| A |", "| B |")))
    assert "†" not in row_a and row_b.count("†") == 1 and row_b.endswith("† |")


def test_without_feature_files_the_groups_are_by_count_only(runs):
    table = group_table(runs, None, reference="A")["Food"]
    assert [table[g]["cases"] for g in group_names(False)] == [
        2 * PER_ITEM,
        PER_ITEM,
        PER_ITEM,
        PER_ITEM,
    ]


def test_every_row_is_grouped_by_the_reference_rows_counts(runs):
    runs[2].cases["Food"]["train_count"] = runs[2].cases["Food"]["train_count"] + 100
    del runs[1].cases["Food"]["train_count"]  # written before train counts
    table = group_table(runs, None, reference="A")["Food"]
    assert table["0 train"]["B"]["fullmrr"] == table["0 train"]["B"]["fullmrr"]  # B is in it
    assert table["0 train"]["cases"] == 2 * PER_ITEM
    for run in runs:
        run.cases["Food"].pop("train_count", None)
    assert group_table(runs, None, reference="A") == {}
