"""A finished benchmark's rows split by what the model knows of each test target.

    python benchmarks/target_groups.py results/food_kitchen-sampled999 dataset/food_kitchen \
        --reference LLMEMF-ids

Reads the per-case ranks of ``<results>.cases.npz`` (no training, no model) and groups each test
case by its target item: *warm* if it is the target of at least one training case
(``<name>.train.inter``), *cold* if never, and whether it has a vector in the feature file
(``<name>.itememb_txt`` by default). Prints, per domain, each row's MRR / NDCG@10 in % on every
group (seeds averaged per case, as in the results table; ``--seeds`` keeps only those) and marks
with † a p < 0.05 in the paired t-test against the reference row on that group's cases
(recbole_llmemf.bench.significance.compare).
A content modality can only lift the cold items that have content: the table says how many test
cases that is and whether it does.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from recbole_llmemf.bench.report import read_cases
from recbole_llmemf.bench.significance import TESTED, compare, mean_over_seeds
from recbole_llmemf.data.fileformat.item_vectors import read_item_vectors

GROUPS = ("warm, with vector", "warm, without", "cold, with vector", "cold, without")


def training_targets(dataset_dir: Path) -> set[str]:
    """Items that are the target of a training case (the split layout's ``.train.inter``)."""
    path = dataset_dir / f"{dataset_dir.name}.train.inter"
    if not path.is_file():
        raise SystemExit(
            f"{path} not found: target groups need the split layout (train/valid/test)"
        )
    with open(path, encoding="utf-8", newline="") as file:
        rows = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows)
        if "item_id:token" not in header:
            raise SystemExit(f"{path} has no item_id:token column")
        column = header.index("item_id:token")
        return {row[column] for row in rows}


def group_of(items: np.ndarray, warm: set[str], with_vector: set[str]) -> np.ndarray:
    """Index into GROUPS of each target item."""
    cold = np.array([item not in warm for item in items.tolist()], dtype=int)
    without = np.array([item not in with_vector for item in items.tolist()], dtype=int)
    return 2 * cold + without


def in_group(tables: list[dict], index: int, warm: set[str], with_vector: set[str]) -> list[dict]:
    """The cases of each seed's table whose target falls in ``GROUPS[index]``."""
    selected = []
    for table in tables:
        mask = group_of(table["item"], warm, with_vector) == index
        selected.append({column: values[mask] for column, values in table.items()})
    return selected


def row_scores(tables: list[dict], reference: list[dict] | None) -> dict:
    """Mean of each metric over the cases (seeds averaged per case), and the paired p-value
    against ``reference`` when given."""
    values = list(mean_over_seeds(tables).values())
    scores = {m: float(np.mean([v[m] for v in values])) if values else np.nan for m in TESTED}
    if reference is not None and values:
        tested = compare(reference, tables)
        scores.update({f"{m}_p": tested[f"{m}_p"] for m in TESTED})
    return scores


def seed_set(text: str) -> set[int]:
    """``--seeds`` as a set: "2020,2021" -> {2020, 2021}."""
    return {int(seed) for seed in text.split(",") if seed}


def of_seeds(runs: dict[tuple[str, int], dict], seeds: set[int]) -> dict[tuple[str, int], dict]:
    """The runs of ``seeds`` only (all runs when empty), so rows compare like for like."""
    kept = {key: domains for key, domains in runs.items() if not seeds or key[1] in seeds}
    if not kept:
        found = sorted({seed for _label, seed in runs})
        raise SystemExit(f"no run with seeds {sorted(seeds)}; seeds: {found}")
    return kept


def group_table(
    runs: dict[tuple[str, int], dict], warm: set[str], with_vector: set[str], reference: str
) -> dict[str, dict[str, dict]]:
    """``{domain: {group: {"cases": n, label: {metric: mean, "<metric>_p": p}}}}`` for every row.

    Args:
        runs: ``read_cases`` of a results stem, ``{(label, seed): {domain: case table}}``.
    """
    rows: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for (label, _seed), domains in sorted(runs.items()):
        for domain, cases in domains.items():
            rows[label][domain].append(cases)
    if reference not in rows:
        raise SystemExit(f"no row {reference!r}; rows: {', '.join(rows)}")
    table: dict[str, dict[str, dict]] = {}
    for domain in sorted(rows[reference]):
        table[domain] = {}
        for index, group in enumerate(GROUPS):
            base = in_group(rows[reference][domain], index, warm, with_vector)
            entry: dict = {"cases": len(mean_over_seeds(base))}
            for label, domains in rows.items():
                tables = in_group(domains[domain], index, warm, with_vector)
                entry[label] = row_scores(tables, None if label == reference else base)
            table[domain][group] = entry
    return table


def markdown(table: dict[str, dict[str, dict]], reference: str) -> str:
    lines = []
    for domain, groups in table.items():
        lines += [
            "",
            f"{domain}: MRR / NDCG@10 (%) by test target; † p < 0.05 against {reference} on the same cases",
            "",
            "| row | " + " | ".join(f"{g} ({groups[g]['cases']})" for g in GROUPS) + " |",
            "|---|" + "---:|" * len(GROUPS),
        ]
        labels = [label for label in groups[GROUPS[0]] if label != "cases"]
        for label in labels:
            cells = []
            for group in GROUPS:
                scores = groups[group][label]
                marks = ["†" if scores.get(f"{m}_p", 1.0) < 0.05 else "" for m in TESTED]
                cells.append(
                    " / ".join(f"{100 * scores[m]:.2f}{mark}" for m, mark in zip(TESTED, marks))
                )
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results", type=Path, help="results stem, e.g. results/food_kitchen-sampled999"
    )
    parser.add_argument("dataset_dir", type=Path, help="the benchmark's dataset folder")
    parser.add_argument("--reference", default="LLMEMF", help="row the others are tested against")
    parser.add_argument("--feature", default="txt", help="feature file suffix: txt or img")
    parser.add_argument(
        "--seeds",
        type=seed_set,
        default=set(),
        help="comma-separated seeds to keep, e.g. 2020 (default: all)",
    )
    args = parser.parse_args()
    cases_path = args.results.with_name(args.results.name + ".cases.npz")
    if not cases_path.is_file():
        raise SystemExit(f"{cases_path} not found: run llmemf-bench first")
    vectors = read_item_vectors(
        str(args.dataset_dir / f"{args.dataset_dir.name}.itememb_{args.feature}")
    )
    table = group_table(
        of_seeds(read_cases(cases_path), args.seeds),
        training_targets(args.dataset_dir),
        set(vectors.tokens),
        args.reference,
    )
    print(markdown(table, args.reference))


if __name__ == "__main__":
    main()
