"""``<name>.enriched.tsv`` (``<name>.enriched_<view>.tsv`` for a ``--views`` view) and its
``.json``: the enrichment's output, which ``llmemf-data features`` reads. Written from the cache; an
unfinished run never replaces a file holding more answers."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from recbole_llmemf.data.fileformat.atomic import atomic_write, write_atomic_file
from recbole_llmemf.dataset_tools.enrich_cache import EnrichmentCache, cache_key
from recbole_llmemf.dataset_tools.errors import EnrichError, FeatureError
from recbole_llmemf.dataset_tools.item_file import ItemRecord
from recbole_llmemf.dataset_tools.llm_backends import Backend
from recbole_llmemf.dataset_tools.prompts import template_hash

logger = logging.getLogger(__name__)

ENRICHED_HEADER = ["item_id:token", "enrichment:token_seq"]


def write_enriched(
    path: str | os.PathLike,
    items: Sequence[ItemRecord],
    cache: EnrichmentCache,
    template: str,
    backend: Backend,
    complete: bool = True,
    view: str = "",
) -> int | None:
    """Write each cached answer for this template, model and view in ``.item`` order; return the
    count.

    A run that did not answer every selected item (``complete`` False: failures, an error, Ctrl-C)
    does not replace an existing output holding more answers, e.g. one written with another model:
    the file stays as it was and ``None`` is returned; this run's answers stay in the cache.
    """
    digest = template_hash(template)
    rows = []
    for item in items:
        record = cache.get(cache_key(item.item_id, digest, backend.label, view))
        if record is not None:
            rows.append((item.item_id, " ".join(record["text"].split())))
    if not complete:
        earlier = _answers_in(path)
        if earlier > len(rows):
            logger.warning(
                "%s kept: it holds %d answers, this unfinished run only %d for %s (they are in "
                "the cache; a finished run writes them)",
                path,
                earlier,
                len(rows),
                backend.label,
            )
            return None
    write_atomic_file(path, ENRICHED_HEADER, rows)
    meta = {
        "model": backend.label,
        "template_hash": digest,
        "template": template,
        "settings": backend.settings,
        "items": len(items),
        "enriched": len(rows),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if view:  # LLM-EMF's enrichment has none; its metadata stays as it was
        meta["view"] = view
    with atomic_write(f"{path}.json") as file:
        json.dump(meta, file, indent=2, ensure_ascii=False)
        file.write("\n")
    return len(rows)


def _answers_in(path: str | os.PathLike) -> int:
    """Answers in an existing output; 0 for none or for an unreadable file (it may be replaced)."""
    try:
        return len(read_enriched(path)[0])
    except (EnrichError, OSError, UnicodeDecodeError):
        return 0


def read_enriched(path: str | os.PathLike) -> tuple[dict[str, str], dict]:
    """``({item_id: text}, metadata)`` from an ``.enriched.tsv`` file and its ``.json``."""
    path = Path(path)
    texts: dict[str, str] = {}
    with open(path, encoding="utf-8") as file:
        header = file.readline().rstrip("\n").split("\t")
        if header != ENRICHED_HEADER:
            raise EnrichError(f"{path}:1: expected header {ENRICHED_HEADER}, got {header}")
        for lineno, line in enumerate(file, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            item_id, tab, text = line.partition("\t")
            if not tab:
                raise EnrichError(f"{path}:{lineno}: expected 2 fields, got 1")
            texts[item_id] = text
    meta_path = Path(f"{path}.json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return texts, meta


def read_enriched_items(
    path: str | os.PathLike, name: str, items: Sequence[ItemRecord]
) -> tuple[dict[str, str], dict]:
    """:func:`read_enriched` for ``llmemf-data features``: every item must be in ``<name>.item``.

    Raises:
        FeatureError: an item that is not.
    """
    texts, meta = read_enriched(path)
    unknown = set(texts) - {item.item_id for item in items}
    if unknown:
        raise FeatureError(
            f"{path}: {len(unknown)} items are not in {name}.item, e.g. '{sorted(unknown)[0]}'"
        )
    return texts, meta
