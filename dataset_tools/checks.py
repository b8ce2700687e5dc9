"""``llmemf-data check <folder>``: read a dataset folder of either layout, run the checks both
importers run (recbole_llmemf/data/fileformat/) and check its feature files."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from recbole_llmemf.data.fileformat.checks import check_data, targets_of_test_cases
from recbole_llmemf.data.fileformat.item_vectors import FeatureFileError, read_item_vectors
from recbole_llmemf.data.fileformat.reader import FormatError, _dataset_yaml, read_folder
from recbole_llmemf.data.fileformat.records import CheckReport, CrossDomainData

# ---------------------------------------------------------------------------------------------
# Feature files


def check_features(folder: Path, data: CrossDomainData) -> tuple[CheckReport, list[str]]:
    """Every feature file of the folder, through the reader a training run uses (width, NaN,
    duplicate and unknown items), and its coverage per domain and of the test targets.

    Returns ``(report, lines)``: errors and warnings, and one coverage line per file.
    """

    config = _dataset_yaml(folder)
    used = {
        f"{data.name}.{config.get(f'{modality}_feature_suffix', suffix)}": modality
        for modality, suffix in (("image", "itememb_img"), ("text", "itememb_txt"))
        if config.get(f"use_{modality}", True)  # LLMEMF.yaml turns both on
    }
    present = {
        path.name
        for path in folder.glob(f"{data.name}.itememb_*")
        if path.suffix not in (".npy", ".tokens", ".json", ".key")
    }
    report, lines = CheckReport(), []
    known = {item.token for item in data.items}
    for name in sorted(present | set(used)):
        path = folder / name
        if not path.is_file():
            report.errors.append(
                f"{path}: feature file not found, but use_{used[name]} is on; create it with "
                f"`llmemf-data features` or set use_{used[name]}: False in {data.name}.yaml"
            )
            continue
        try:
            vectors = read_item_vectors(str(path), known, binary_copy=False)
        except FeatureFileError as error:
            report.errors.append(str(error))
            continue
        line, empty = _coverage_line(name, vectors.tokens, vectors.matrix.shape[1], data)
        lines.append(line)
        report.warnings += [f"{name}: no {domain} item has a vector" for domain in empty]
    return report, lines


def _coverage_line(name: str, tokens: list[str], dim: int, data: CrossDomainData):
    have = set(tokens)
    listed = Counter(item.domain for item in data.items)
    covered = Counter(item.domain for item in data.items if item.token in have)
    parts = [
        f"{d} {covered[d]:,} of {listed[d]:,} ({100 * covered[d] / max(listed[d], 1):.1f}%)"
        for d in data.domains
    ]
    targets = targets_of_test_cases(data)
    without = sum(target not in have for target in targets)
    line = (
        f"{name}: {dim}-d vectors for {len(have):,} of {len(data.items):,} items; "
        f"{', '.join(parts)}; {without:,} of {len(targets):,} test targets have none"
    )
    return line, [d for d in data.domains if listed[d] and not covered[d]]


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    folder = Path(args.folder)
    try:
        data = read_folder(folder)
    except FormatError as error:
        print(error, file=sys.stderr)
        return 1
    report = check_data(data)
    feature_report, coverage = check_features(folder, data)
    report.errors += feature_report.errors
    report.warnings += feature_report.warnings
    if data.cases:
        parts = ", ".join(f"{len(data.cases[s]):,} {s}" for s in data.cases)
        layout = f"split files, cases: {parts}"
    else:
        layout = f"{data.name}.inter, split by RecBole"
    print(
        f"{folder}: {len(data.items):,} items in {', '.join(data.domains)}; "
        f"{len(data.interactions):,} interactions; {layout}"
    )
    print("\n".join(coverage or [f"no feature files ({data.name}.itememb_*)"]))
    print(report.format())
    return 0 if report.ok else 1
