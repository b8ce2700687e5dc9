"""RecBole's Config reads ``--key=value`` options from ``sys.argv`` itself (configurator.py
L165-193); commands that call RecBole from Python give it the arguments meant for it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def recbole_argv(prog: str, argv: Sequence[str] | None) -> Iterator[list[str]]:
    """RecBole's Config reads ``--key=value`` from ``sys.argv`` itself; make it see ``argv``."""
    saved = sys.argv
    if argv is not None:
        sys.argv = [prog, *argv]
    try:
        yield sys.argv[1:]
    finally:
        sys.argv = saved
