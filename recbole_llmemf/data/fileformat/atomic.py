"""Atomic output: every file a tool writes appears complete or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _read_umask() -> int:
    # os.umask can only be read by setting it; do that once, at import, not while threads write
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside ``path``, fsync, then rename it over ``path``.

    The temporary name is unique (``<name>.<random>.tmp``), so two processes writing the same
    file at once (two runs drawing the same candidates) each rename a complete file of their own
    and the last one wins; a fixed ``<name>.tmp`` made one rename the other's half-written file or
    fail. On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    tmp = Path(tmp)
    encoding = None if "b" in mode else "utf-8"
    try:
        # mkstemp creates the file 0600; give it the permissions a plain open() would
        os.fchmod(descriptor, 0o666 & ~_UMASK)
        with open(descriptor, mode, encoding=encoding) as file:
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
