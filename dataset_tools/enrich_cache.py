"""The enrichment cache: an append-only JSONL file of answers keyed by ``(item_id, template hash,
model, view)``, each line flushed and fsynced as it arrives; and ``--merge``, which appends the
shard caches' answers to it. The view (``--views``: image, text, both) is written only where there is
one, so the lines of LLM-EMF's enrichment stay as they were before views existed."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from recbole_llmemf.dataset_tools import _shards
from recbole_llmemf.dataset_tools.errors import EnrichError
from recbole_llmemf.dataset_tools.item_file import ItemRecord
from recbole_llmemf.dataset_tools.prompts import template_hash

logger = logging.getLogger(__name__)


CacheKey = tuple[str, str, str, str]


def cache_key(item_id: str, template_digest: str, model: str, view: str = "") -> CacheKey:
    """``view`` "" is LLM-EMF's enrichment (no ``--views``); the three views never share a key,
    even with one template (``--template-file``) and one model."""
    return (item_id, template_digest, model, view)


def record_key(record: dict) -> CacheKey:
    return cache_key(
        record["item_id"], record["template_hash"], record["model"], record.get("view", "")
    )


class EnrichmentCache:
    """Append-only JSONL; the last line for a key wins. Use as a context manager."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[CacheKey, dict] = {}
        self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def _load(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            # a run killed mid-write left a torn line: cut it so the next append starts clean
            logger.warning(
                "%s: dropping an unfinished last line (%d bytes)",
                self.path,
                len(data) - len(complete),
            )
            with open(self.path, "r+b") as file:
                file.truncate(len(complete))
                file.flush()
                os.fsync(file.fileno())
        for lineno, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = record_key(record)
                record["text"]  # noqa: B018 - the field must exist
            except (ValueError, KeyError, TypeError) as error:
                raise EnrichError(f"{self.path}:{lineno}: not a cache record ({error})") from None
            self.entries[key] = record

    def __contains__(self, key: CacheKey) -> bool:
        return key in self.entries

    def get(self, key: CacheKey) -> dict | None:
        return self.entries.get(key)

    def append(self, record: dict) -> None:
        """Write one record as one line, flushed and fsynced before returning."""
        self._file.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.entries[record_key(record)] = record

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EnrichmentCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def merge_shard_caches(
    cache_path: Path,
    selected: Sequence[ItemRecord],
    template: str,
    model: str,
    view: str = "",
    excused: Callable[[ItemRecord], bool] | None = None,
) -> int:
    """Append the shard caches' answers that ``cache_path`` lacks to it; return how many.

    ``excused(item)``: True for an item that needs no answer (the image views: its image does not
    load, so no shard could ask about it).

    Raises:
        EnrichError: some selected item has no answer for this template, model and view in any
            cache, and is not excused.
    """
    digest = template_hash(template)
    keys = [cache_key(item.item_id, digest, model, view) for item in selected]
    added = 0
    with EnrichmentCache(cache_path) as cache:
        shard_caches = _shards.found_shard_paths(cache_path)
        for path in shard_caches:
            with EnrichmentCache(path) as shard_cache:
                for key in keys:
                    record = shard_cache.get(key)
                    if record is not None and key not in cache:
                        cache.append(record)
                        added += 1
        unanswered = [item for item, key in zip(selected, keys) if key not in cache]
    missing = [item.item_id for item in unanswered if excused is None or not excused(item)]
    if missing:
        raise EnrichError(
            f"merge: {len(missing)} of {len(keys)} items have no answer for {model}"
            f"{f' ({view} view)' if view else ''} in {cache_path.name} or its "
            f"{len(shard_caches)} shard caches (e.g. '{missing[0]}'); finish the --shard runs first"
        )
    if len(unanswered) > len(missing):
        logger.info("merge: %d items without a loadable image", len(unanswered) - len(missing))
    logger.info("merged %d answers from %d shard caches", added, len(shard_caches))
    return added
