"""The one error type of our own input checks, and how the console commands report it.

A ``DataError`` means the user's files are wrong, not the code: its message names the file and line
(``path:lineno: what is wrong``). The console commands print that message and exit with status 1;
any other exception still ends in a traceback, because that one is ours to fix.
"""

from __future__ import annotations

import functools
import pickle
import sys
from collections.abc import Callable


class DataError(ValueError):
    """Bad input data; the message says ``file:line: what is wrong``."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint names something a RecBole checkpoint never holds, or a config that could make
    RecBole run, read or write what its author chose; nothing of it was run."""


def reports_data_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a console command's ``main``: a ``DataError`` becomes its message and exit status 1."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except DataError as error:
            print(str(error), file=sys.stderr)
            return 1

    return wrapper
