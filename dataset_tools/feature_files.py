"""The files ``llmemf-data features`` writes beside the dataset, each atomically: the vector files,
the coverage table (items with a title / enrichment / vector per domain), and the switches in the
dataset's yaml that turn the written vectors on."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recbole_llmemf.data.fileformat.atomic import atomic_write
from recbole_llmemf.dataset_tools.item_file import ItemRecord

logger = logging.getLogger(__name__)


def write_vectors(path: Path, field: str, tokens: Sequence[str], vectors: np.ndarray) -> None:
    """The atomic feature file: header, then ``token<TAB>v1 v2 ...`` (7 significant digits)."""
    with atomic_write(path) as file:
        file.write(f"item_id:token\t{field}:float_seq\n")
        for token, row in zip(tokens, vectors):
            file.write(token + "\t" + " ".join(map("{:.7g}".format, row.tolist())) + "\n")


def coverage_table(
    items: Sequence[ItemRecord], enriched: dict[str, str], written: dict[str, set[str]]
) -> list[list]:
    """Rows ``[domain, items, title, enrichment, <kind>...]`` per domain, then ``all``."""
    kinds = list(written)
    domains = sorted({item.domain for item in items})
    rows = []
    for domain in [*domains, "all"]:
        chosen = [item for item in items if domain in ("all", item.domain)]
        rows.append(
            [
                domain,
                len(chosen),
                sum(bool(item.title) for item in chosen),
                sum(item.item_id in enriched for item in chosen),
            ]
            + [sum(item.item_id in written[kind] for item in chosen) for kind in kinds]
        )
    return rows


def format_coverage(header: list[str], rows: list[list]) -> str:
    def cells(row):
        total = row[1]
        return [str(row[0]), str(total)] + [
            f"{v} ({100 * v / max(total, 1):.1f}%)" for v in row[2:]
        ]

    table = [header] + [cells(row) for row in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in table)


def write_coverage(
    path: Path,
    items: Sequence[ItemRecord],
    enriched: dict[str, str],
    written: dict[str, set[str]],
    reasons_by_kind: dict[str, Counter],
) -> None:
    """Write the coverage table to ``path`` (tab-separated) and print it, with the reasons items
    got no vector."""
    header = ["domain", "items", "title", "enrichment"] + [f"{k}_vector" for k in written]
    rows = coverage_table(items, enriched, written)
    report = format_coverage(header, rows)
    with atomic_write(path) as file:
        file.write("\t".join(header) + "\n")
        for row in rows:
            file.write("\t".join(map(str, row)) + "\n")
    missing_text = "; ".join(
        f"{kind}: " + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        for kind, reasons in reasons_by_kind.items()
        if reasons
    )
    print(report)
    if missing_text:
        print(f"missing: {missing_text}")
    print(f"coverage -> {path}")


def enable_in_dataset_yaml(path: Path, outputs: dict[str, Path]) -> None:
    """Set ``use_image`` / ``use_text: True`` in the dataset's yaml for the image and text files
    just written, with a comment that says so (the old one said there were no vectors yet); every
    other line stays as it was. The ablation's and DMESR's files switch nothing: DMESR names its
    own (``dmesr_views``)."""
    keys = {
        "use_image" if kind == "img" else "use_text": out
        for kind, out in outputs.items()
        if kind in ("img", "txt")
    }
    if not keys or not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    for key, out in sorted(keys.items()):
        modality = "Image" if key == "use_image" else "Text"
        comment = f"# (bool) {modality} vectors from {out.name}, written by `llmemf-data features`."
        pattern = re.compile(rf"^{key}:[^\n]*$", flags=re.M)
        match = pattern.search(text)
        if match is None:
            text = text.rstrip("\n") + f"\n{key}: True  {comment}\n"
            continue
        column = match.group(0).find("#")  # keep the file's comment column
        value = f"{key}: True"
        line = f"{value:<{column}}{comment}" if column > len(value) else f"{value}  {comment}"
        text = text[: match.start()] + line + text[match.end() :]
    with atomic_write(path) as file:
        file.write(text)
    logger.info("%s: %s", path.name, ", ".join(f"{key}: True" for key in sorted(keys)))
