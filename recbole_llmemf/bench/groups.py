"""Test cases grouped by what the model can know of their target: how often it is the target of a
training pair (0, 1-2, 3-9, 10+) and whether it has a content vector. Sparse catalogs are
where ID models fail and co-occurrence or content must carry the ranking; these tables show it.

Each run's case tables carry ``train_count``, from the training split of that run
(:func:`attach_train_counts`, from the training dataset RecBole built), and every row is grouped
by the reference row's counts (general models train on more interactions); which items have a
vector is read from the dataset's feature files (:func:`content_items`). Per domain and group, each
row's MRR and NDCG@10 over the group's cases (seeds averaged per case) and the paired test against
the reference row on those cases (significance.compare).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recbole_llmemf.bench.significance import TESTED, compare, mean_over_seeds
from recbole_llmemf.data.fileformat.item_vectors import read_item_vectors
from recbole_llmemf.data.training_data import training_target_counts

if TYPE_CHECKING:
    from recbole_llmemf.bench.records import Run

COUNT_BINS = ((0, "0"), (1, "1-2"), (3, "3-9"), (10, "10+"))  # (lowest count, name)
FEATURE_SUFFIXES = ("itememb_txt", "itememb_img")


def group_names(with_content: bool) -> list[str]:
    if not with_content:
        return [f"{name} train" for _, name in COUNT_BINS]
    return [f"{name} train, {c}" for _, name in COUNT_BINS for c in ("content", "none")]


def attach_train_counts(cases: dict[str, dict], train_dataset) -> None:
    """Add ``train_count`` to each domain's case table: how often the target is the target of a
    training pair of ``train_dataset`` (RecBole's training split, as the run's loader has it)."""
    counts = training_target_counts(train_dataset).numpy()
    token_to_id = train_dataset.field2token_id[train_dataset.iid_field]
    for table in cases.values():
        ids = np.array([token_to_id.get(token, 0) for token in table["item"].tolist()], dtype=int)
        table["train_count"] = counts[ids].astype(np.int64)


def content_items(dataset_dir: Path) -> set[str] | None:
    """Items with a vector in any of the dataset's feature files; None where it has none."""
    files = [dataset_dir / f"{dataset_dir.name}.{suffix}" for suffix in FEATURE_SUFFIXES]
    present = [path for path in files if path.is_file()]
    if not present:
        return None
    return {token for path in present for token in read_item_vectors(str(path)).tokens}


def group_index(table: dict, counts: dict[str, int], content: set[str] | None) -> np.ndarray:
    """Index into :func:`group_names` of each case, from its target's training count."""
    items = table["item"].tolist()
    target_counts = np.array([counts.get(item, 0) for item in items])
    bins = np.zeros(len(target_counts), dtype=int)
    for index, (low, _name) in enumerate(COUNT_BINS):
        bins[target_counts >= low] = index
    if content is None:
        return bins
    without = np.array([item not in content for item in items], dtype=int)
    return 2 * bins + without


def training_counts(runs: list[Run], domain: str, reference: str) -> dict[str, int] | None:
    """``{target: train_count}`` of the reference row's cases (else of the first run that has
    them): one grouping for every row, whatever training split a general model built."""
    counted = [run for run in runs if "train_count" in run.cases.get(domain, {})]
    counted.sort(key=lambda run: run.label != reference)  # the reference's first
    if not counted:
        return None
    cases = counted[0].cases[domain]
    return dict(zip(cases["item"].tolist(), cases["train_count"].tolist()))


def group_table(runs: list[Run], content: set[str] | None, reference: str) -> dict:
    """``{domain: {group: {"cases": n, "against": reference, label: {metric: mean,
    "<metric>_p": p}}}}``; domains without training counts (cases written before them) are left
    out."""
    names = group_names(content is not None)
    result: dict = {}
    for domain in dict.fromkeys(d for run in runs for d in run.cases):
        counts = training_counts(runs, domain, reference)
        if counts is None:
            continue
        rows: dict[str, list] = defaultdict(list)  # per label, (cases, group of each) per seed
        for run in runs:
            if domain in run.cases:
                cases = run.cases[domain]
                rows[run.label].append((cases, group_index(cases, counts, content)))
        result[domain] = {}
        for index, group in enumerate(names):
            of_group = {
                label: [_select(cases, groups == index) for cases, groups in seeds]
                for label, seeds in rows.items()
            }
            entry: dict = {
                "cases": len(mean_over_seeds(next(iter(of_group.values())))),
                "against": reference,
            }
            for label, selected in of_group.items():
                against = None if label == reference else of_group.get(reference)
                entry[label] = _scores(selected, against)
            result[domain][group] = entry
    return result


def _select(cases: dict, mask: np.ndarray) -> dict:
    return {column: values[mask] for column, values in cases.items()}


def _scores(selected: list[dict], reference: list[dict] | None) -> dict:
    values = list(mean_over_seeds(selected).values())
    scores = {m: float(np.mean([v[m] for v in values])) if values else float("nan") for m in TESTED}
    if reference is not None and values:
        tested = compare(reference, selected)
        scores.update({f"{m}_p": tested[f"{m}_p"] for m in TESTED})
    return scores


def group_lines(groups: dict) -> list[str]:
    """One markdown table per domain: MRR % per group, † p < 0.05 against the reference row."""
    lines = []
    for domain, by_group in groups.items():
        names = [g for g, entry in by_group.items() if entry["cases"]]
        if not names:
            continue
        reference = by_group[names[0]]["against"]
        labels = [label for label in by_group[names[0]] if label not in ("cases", "against")]
        lines += [
            f"### {domain}: MRR (%) by test target",
            "",
            f"Groups: how often the target item is a training target, and whether it has a "
            f"content vector; (n) test cases. † p < 0.05 against {reference} on the group's cases "
            f"(paired t-test, not adjusted for the number of groups).",
            "",
            "| model | " + " | ".join(f"{g} ({by_group[g]['cases']:,})" for g in names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for label in labels:
            cells = []
            for group in names:
                scores = by_group[group].get(label, {})
                value = scores.get("fullmrr", float("nan"))
                mark = "†" if scores.get("fullmrr_p", 1.0) < 0.05 else ""
                cells.append("-" if np.isnan(value) else f"{100 * value:.2f}{mark}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines
