"""Atomic output: every file a tool writes appears complete or not at all."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Write to ``<path>.tmp`` beside the target, fsync, then rename over ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    encoding = None if "b" in mode else "utf-8"
    try:
        with open(tmp, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic_file(path: str | os.PathLike, header: list[str], rows) -> None:
    """Write a RecBole atomic file: a tab-separated ``name:type`` header, then one row per line."""
    with atomic_write(path) as file:
        file.write("\t".join(header) + "\n")
        for row in rows:
            file.write("\t".join(map(str, row)) + "\n")
