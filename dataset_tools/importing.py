"""What the importers (``llmemf-data amazon``, ``llmemf-data c2dsr``) share: the input-error policy,
streaming input lines, cutting time-ordered sequences into cases, and the build-check-write run
around a tool's own ``build``."""

from __future__ import annotations

import gzip
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from recbole_llmemf.data.fileformat.checks import check_data
from recbole_llmemf.data.fileformat.records import Case, CrossDomainData
from recbole_llmemf.dataset_tools.dataset_files import compute_stats, format_stats, write_dataset

logger = logging.getLogger(__name__)

MAX_LOGGED_ERRORS = 10


# ---------------------------------------------------------------------------------------------
# Malformed input: one policy for every tool


class MalformedInputError(ValueError):
    """A malformed input line under ``--on-error stop``; the message names file and line."""


@dataclass
class InputErrors:
    """``stop`` raises at the first malformed line; ``skip`` logs it, counts it and goes on."""

    policy: str = "stop"
    skipped: Counter = field(default_factory=Counter)  # file -> lines skipped
    _lines: set = field(default_factory=set)  # (file, line) already reported

    def report(self, path: str | Path, lineno: int, message: str) -> None:
        text = f"{path}:{lineno}: {message}"
        if self.policy == "stop":
            raise MalformedInputError(text)
        if (str(path), lineno) in self._lines:
            return
        self._lines.add((str(path), lineno))
        self.skipped[str(path)] += 1
        total = sum(self.skipped.values())
        if total <= MAX_LOGGED_ERRORS:
            logger.warning("skipped %s", text)
        elif total == MAX_LOGGED_ERRORS + 1:
            logger.warning("more malformed lines: counted, not shown")

    def known(self, path: str | Path, lineno: int) -> bool:
        """Whether this line was reported before (files read twice report a line once)."""
        return (str(path), lineno) in self._lines

    def summary(self) -> list[str]:
        return [f"{path}: skipped {n:,} malformed lines" for path, n in self.skipped.items()]


def input_lines(path: Path, desc: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a text or ``.gz`` file, with a progress bar over its bytes."""
    size = path.stat().st_size
    start = time.perf_counter()
    progress = tqdm(total=size, desc=desc, unit="B", unit_scale=True, disable=None, leave=False)
    lineno = position = 0
    with progress, open(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        for lineno, line in enumerate(stream, start=1):
            if lineno % 8192 == 0:  # the compressed position, since the unpacked size is unknown
                progress.update(raw.tell() - position)
                position = raw.tell()
            yield lineno, line.decode("utf-8", errors="replace")
        progress.update(size - position)
    elapsed = time.perf_counter() - start
    logger.info(
        "%s: %s lines in %.1f s (%s lines/s)",
        desc,
        f"{lineno:,}",
        elapsed,
        f"{lineno / max(elapsed, 1e-9):,.0f}",
    )


def clean_text(text: object) -> str:
    """One line of text: lists joined, whitespace (tabs, newlines) collapsed to single spaces."""
    if isinstance(text, (list, tuple)):
        text = " ".join(str(part) for part in text)
    return " ".join(str(text or "").split())


# ---------------------------------------------------------------------------------------------
# Cases


def train_cases(user: str, sequence: Sequence[tuple[str, float]], max_len: int) -> list[Case]:
    """Every prefix of a time-ordered sequence as a case (targets at positions >= 1)."""
    items = [item for item, _ in sequence]
    return [
        Case(user, tuple(items[max(0, p - max_len) : p]), items[p], sequence[p][1])
        for p in range(1, len(sequence))
    ]


def eval_case(user: str, sequence: Sequence[tuple[str, float]], max_len: int) -> Case:
    """The last item of a time-ordered sequence as target, the ``max_len`` before it as history."""
    history = tuple(item for item, _ in sequence[-max_len - 1 : -1])
    return Case(user, history, sequence[-1][0], sequence[-1][1])


# ---------------------------------------------------------------------------------------------
# The run: build, then check and write


def run_build(
    tool: str, build_fn: Callable[[Any, InputErrors], Any], spec: Any, on_error: str
) -> Any | None:
    """Run a tool's ``build_fn(spec, errors)``; report bad input and skipped lines.

    Returns what ``build_fn`` returned, or None when the input was bad (the error is printed).
    """
    errors = InputErrors(on_error)
    try:
        built = build_fn(spec, errors)
    except (MalformedInputError, FileNotFoundError, ValueError) as error:
        print(f"llmemf-data {tool}: {error}", file=sys.stderr)
        return None
    for line in errors.summary():
        print(f"WARNING: {line}")
    return built


def finish(data: CrossDomainData, out_dir: str | Path, tool: str, build_info: dict) -> int:
    """Check, then write and print the statistics; nothing is written when a check fails."""
    report = check_data(data)
    for warning in report.warnings:
        logger.warning(warning)
    if not report.ok:
        print(
            f"llmemf-data {tool}: checks failed, nothing written:\n{report.format()}",
            file=sys.stderr,
        )
        return 1
    stats = compute_stats(data)
    folder = write_dataset(data, out_dir, tool, build_info, stats)
    print(format_stats(stats))
    for note in data.notes:
        logger.warning(note)  # also on stderr, where logs go
    print(f"checks passed; wrote {folder}")
    return 0
