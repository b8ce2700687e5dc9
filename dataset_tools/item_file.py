"""The items of a dataset folder as the enrich and features tools see them: ``<name>.item`` read
into :class:`ItemRecord` rows, in file order."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recbole_llmemf.dataset_tools.errors import EnrichError


@dataclass(frozen=True)
class ItemRecord:
    item_id: str
    domain: str
    title: str
    image_url: str = ""


def dataset_name(dataset_dir: str | os.PathLike) -> str:
    return Path(dataset_dir).resolve().name


def read_items(dataset_dir: str | os.PathLike, name: str | None = None) -> list[ItemRecord]:
    """Read ``<dataset_dir>/<name>.item`` (fields ``item_id``, ``domain``, ``title``, optional
    ``image_url``), in file order.

    Raises:
        EnrichError: missing file or field, a line with the wrong number of fields, a repeated
            item.
    """
    name = name or dataset_name(dataset_dir)
    path = Path(dataset_dir) / f"{name}.item"
    if not path.is_file():
        raise EnrichError(f"{path}: item file not found")
    with open(path, encoding="utf-8") as file:
        header = file.readline().rstrip("\n").split("\t")
        names = [column.partition(":")[0] for column in header]
        for required in ("item_id", "domain", "title"):
            if required not in names:
                raise EnrichError(f"{path}:1: no '{required}' field in header {header}")
        where = {column: names.index(column) for column in names}
        items: list[ItemRecord] = []
        seen: dict[str, int] = {}
        for lineno, line in enumerate(file, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            values = line.split("\t")
            if len(values) != len(names):
                raise EnrichError(
                    f"{path}:{lineno}: expected {len(names)} fields, got {len(values)}"
                )
            item_id = values[where["item_id"]]
            if item_id in seen:
                raise EnrichError(f"{path}:{lineno}: item '{item_id}' repeats line {seen[item_id]}")
            seen[item_id] = lineno
            image_url = values[where["image_url"]].strip() if "image_url" in where else ""
            items.append(
                ItemRecord(
                    item_id,
                    values[where["domain"]].strip(),
                    " ".join(values[where["title"]].split()),
                    image_url,
                )
            )
    return items
