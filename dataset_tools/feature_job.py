"""One feature file's work in resumable shards.

Each output is computed in shards of ``--shard-size`` items under
``<dir>/.llmemf_features/<suffix>/``; a shard file (written atomically) is named by a hash of its
inputs and the encoder settings, so a rerun skips every finished shard and recomputes only shards
whose titles, enrichment, image references or encoder changed. A ``manifest.json`` lists the
shards of the current run. ``--shard K/N`` computes only every N-th shard from K; ``--merge``
computes none and needs them all (:mod:`._shards`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from recbole_llmemf.data.fileformat.atomic import atomic_write
from recbole_llmemf.dataset_tools import _shards
from recbole_llmemf.dataset_tools.errors import FeatureError
from recbole_llmemf.dataset_tools.item_file import ItemRecord

logger = logging.getLogger(__name__)

# encode_shard(inputs) -> (vectors [k, dim] | None, reasons): see run_job
ShardEncoder = Callable[[list], "tuple[np.ndarray | None, list[str]]"]


@dataclass
class Job:
    """One output file: which items, their inputs, and how to encode a shard of them."""

    kind: str  # img, txt, txtraw
    encoder_name: str
    settings: dict
    inputs: list  # per item: a text, a list of image sources, or None (no input)


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def run_job(
    job: Job,
    items: Sequence[ItemRecord],
    work_dir: Path,
    encode_shard: ShardEncoder,
    shard_size: int,
    signature_of: Callable[[Any], Any] = lambda inputs: inputs,
    progress: bool = True,
    part: _shards.Shard | None = None,
    merge: bool = False,
) -> tuple[list[str], np.ndarray, Counter]:
    """Compute missing shards, then return ``(tokens, vectors [n, dim], missing reasons)``.

    ``part`` (``--shard K/N``): compute only every N-th shard from K and return nothing.
    ``merge``: compute nothing; every shard must be there (:mod:`._shards`).

    ``encode_shard(inputs) -> (vectors [k, dim] | None, reasons)`` gets the inputs of one shard's
    items that have one; ``reasons[i]`` is "" where row i got a vector.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    shard_files, todo = plan_shards(job, items, work_dir, shard_size, signature_of)
    todo = _shards_to_compute(todo, shard_files, part, merge)
    if part is None:  # concurrent shard runs would race on it; the merge writes it
        write_manifest(job, len(items), work_dir, shard_size, shard_files)
    n_todo = sum(len(items[chunk]) for chunk, _ in todo)
    n_encoded = 0
    if len(todo) < len(shard_files):
        logger.info(
            "%s: %d of %d shards already done",
            job.kind,
            len(shard_files) - len(todo),
            len(shard_files),
        )
    start_time = time.perf_counter()
    with tqdm(total=n_todo, unit="item", desc=job.kind, disable=not progress) as bar:
        for chunk, path in todo:
            n_encoded += compute_shard(items[chunk], job.inputs[chunk], path, encode_shard)
            bar.update(len(items[chunk]))
    seconds = time.perf_counter() - start_time
    if part is not None:
        return [], np.zeros((0, 0), np.float32), Counter()
    if n_todo:  # the rate of items actually encoded: items without an input cost nothing
        logger.info(
            "%s: %d items encoded in %.1fs (%.1f items/s); %d without a vector",
            job.kind,
            n_encoded,
            seconds,
            n_encoded / max(seconds, 1e-9),
            n_todo - n_encoded,
        )
    remove_stale_shards(work_dir, shard_files)
    return read_shards(shard_files)


def plan_shards(
    job: Job,
    items: Sequence[ItemRecord],
    work_dir: Path,
    shard_size: int,
    signature_of: Callable[[Any], Any],
) -> tuple[list[Path], list[tuple[slice, Path]]]:
    """Every shard's file, named by a hash of its items, inputs and the encoder settings, and
    ``(items slice, file)`` of the shards whose file is not there yet."""
    shard_files = []
    todo = []
    for number, start in enumerate(range(0, len(items), shard_size)):
        chunk = slice(start, start + shard_size)
        key = _digest(
            [
                job.encoder_name,
                job.settings,
                [item.item_id for item in items[chunk]],
                [signature_of(x) if x is not None else None for x in job.inputs[chunk]],
            ]
        )
        path = work_dir / f"shard_{number:05d}_{key[:12]}.npz"
        shard_files.append(path)
        if not path.is_file():
            todo.append((chunk, path))
    return shard_files, todo


def _shards_to_compute(todo: list, shard_files: list[Path], part, merge: bool) -> list:
    """The missing shards this run computes: all, shard K/N's share (``part``), or, for a merge,
    none (an error if any is missing)."""
    if part is not None:
        mine = {shard_files[number] for number in _shards.take(range(len(shard_files)), part)}
        return [(chunk, path) for chunk, path in todo if path in mine]
    if merge and todo:
        names = ", ".join(path.name[: len("shard_00000")] for _, path in todo[:5])
        raise FeatureError(
            f"merge: {len(todo)} of {len(shard_files)} shards are missing ({names}"
            f"{', ...' if len(todo) > 5 else ''}) for these inputs and settings; finish the "
            "--shard runs (same options) first"
        )
    return todo


def write_manifest(
    job: Job, n_items: int, work_dir: Path, shard_size: int, shard_files: list[Path]
) -> None:
    """``manifest.json``: the job and the shard files of the current run."""
    manifest = {
        "kind": job.kind,
        "encoder": job.encoder_name,
        "settings": job.settings,
        "items": n_items,
        "shard_size": shard_size,
        "shards": [path.name for path in shard_files],
    }
    with atomic_write(work_dir / "manifest.json") as file:
        json.dump(manifest, file, indent=2)


def compute_shard(
    items: Sequence[ItemRecord], inputs: list, path: Path, encode_shard: ShardEncoder
) -> int:
    """Encode one shard's items that have an input and write its file; returns the vectors in it.

    The file holds the tokens and vectors of the items that got one, and the others' tokens with
    the reason they got none ("no input", or the reason ``encode_shard`` gave).
    """
    tokens = [item.item_id for item in items]
    has_input = [i for i, x in enumerate(inputs) if x is not None]
    reasons = ["no input"] * len(tokens)
    vectors = np.zeros((0, 0), dtype=np.float32)
    if has_input:
        encoded, sub_reasons = encode_shard([inputs[i] for i in has_input])
        for i, reason in zip(has_input, sub_reasons):
            reasons[i] = reason
        if encoded is not None:
            vectors = encoded
    ok = [t for t, r in zip(tokens, reasons) if not r]
    assert len(ok) == len(vectors), (len(ok), vectors.shape)
    with atomic_write(path, "wb") as file:
        np.savez(
            file,
            tokens=np.array(ok, dtype=str),
            vectors=vectors.astype(np.float32),
            missing=np.array([t for t, r in zip(tokens, reasons) if r], dtype=str),
            reasons=np.array([r for r in reasons if r], dtype=str),
        )
    return len(ok)


def remove_stale_shards(work_dir: Path, shard_files: Sequence[Path]) -> None:
    """Delete the shard files of earlier inputs or settings that this run no longer uses."""
    for stale in work_dir.glob("shard_*.npz"):
        if stale not in shard_files:
            stale.unlink()


def read_shards(shard_files: Sequence[Path]) -> tuple[list[str], np.ndarray, Counter]:
    """``(tokens, vectors [n, dim], missing reasons)`` of the shard files, in their order."""
    tokens, blocks, reasons_count = [], [], Counter()
    for path in shard_files:
        with np.load(path, allow_pickle=False) as shard:
            tokens += shard["tokens"].tolist()
            if len(shard["tokens"]):
                blocks.append(shard["vectors"])
            reasons_count.update(shard["reasons"].tolist())
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)
    return tokens, vectors, reasons_count
