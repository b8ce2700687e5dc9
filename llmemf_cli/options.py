"""Options and defaults several commands share; standard library only."""

from __future__ import annotations

import argparse
import re

DEMO_DATASET = "llmemf_demo"

DEMO_USERS = 1500

DEMO_SEED = 2026

ON_ERROR = ("stop", "skip")

THREADS_HELP = (
    "torch CPU threads (default: torch's choice, one per core); on a machine whose cores are busy "
    "with other work, 1 can be many times faster"
)


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N``."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got '{text}'")
    return int(match[1]), int(match[2])


def add_shard_options(parser: argparse.ArgumentParser, unit: str) -> None:
    """``--shard K/N`` and ``--merge`` (recbole_llmemf.dataset_tools._shards does the work)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--shard",
        type=parse_shard,
        metavar="K/N",
        help=f"compute only every N-th {unit}, starting at K (0-based), into files of this "
        "shard; no final output (see --merge)",
    )
    group.add_argument(
        "--merge",
        action="store_true",
        help="after the --shard runs: check every shard is done, then write the outputs",
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of both importers (``amazon`` and ``c2dsr``)."""
    parser.add_argument(
        "--out",
        default="dataset",
        help="parent folder (RecBole's data_path); writes <out>/<name>/ (default: %(default)s)",
    )
    parser.add_argument(
        "--max-len",
        type=int,
        default=15,
        help="longest history kept per case, the last items (default: %(default)s, C2DSR)",
    )
    parser.add_argument(
        "--on-error",
        choices=ON_ERROR,
        default="stop",
        help="malformed input line: stop with its file and line, or skip and count it "
        "(default: %(default)s)",
    )
