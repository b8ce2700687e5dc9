"""``--shard K/N`` and ``--merge`` for the long data commands (``enrich``, ``features``).

N processes or machines each run the command with ``--shard K/N`` (K = 0 .. N-1): each takes every
N-th unit of work in a fixed order (items for ``enrich``, item shards for ``features``), keeps its
results in files of its own (resumable like an unsharded run), and writes no final output. One
``--merge`` run with otherwise the same options then checks that every unit is done, and writes the
outputs exactly as one unsharded run would. On several machines, copy the shard files into the
dataset folder (or share it) before merging.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
Shard = tuple[int, int]  # (K, N), from --shard (llmemf_cli.options.parse_shard)


def take(values: Sequence[T], shard: Shard) -> list[T]:
    """Shard ``K/N``'s share of ``values``: positions K, K + N, K + 2N, ..."""
    k, n = shard
    return list(values[k::n])


def shard_path(path: Path, shard: Shard) -> Path:
    """``name.ext`` -> ``name.shard-K-of-N.ext``, beside it."""
    k, n = shard
    return path.with_name(f"{path.stem}.shard-{k}-of-{n}{path.suffix}")


def found_shard_paths(path: Path) -> list[Path]:
    """The ``shard_path`` files of ``path`` that exist, in (N, K) order."""
    pattern = re.compile(rf"{re.escape(path.stem)}\.shard-(\d+)-of-(\d+){re.escape(path.suffix)}")
    found = []
    for candidate in path.parent.glob(f"{path.stem}.shard-*{path.suffix}"):
        match = pattern.fullmatch(candidate.name)
        if match:
            found.append(((int(match[2]), int(match[1])), candidate))
    return [candidate for _, candidate in sorted(found)]
