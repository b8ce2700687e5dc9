"""``llmemf-recommend``: its arguments; ``main`` parses them, then runs the command."""

from __future__ import annotations

import argparse
import sys

from llmemf_cli.common import entry_point

NEXT, ALL = "next", "all"  # --domain values besides a domain token


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-recommend",
        description="Write the top-k items of every user from a saved RecBole checkpoint "
        "(LLMEMF or a RecBole model) as TSV: user token, rank, item token, score. "
        "The user's own items are never recommended.",
    )
    parser.add_argument("checkpoint", help="a .pth file RecBole saved (saved/<Model>-<time>.pth)")
    parser.add_argument(
        "--out",
        default="recommendations.tsv",
        help="TSV to write, atomically (default: %(default)s)",
    )
    parser.add_argument(
        "-k", "--top-k", type=int, default=10, help="items per user (default: %(default)s)"
    )
    parser.add_argument(
        "--domain",
        default=NEXT,
        help=f"candidates: a domain token (e.g. Book), '{NEXT}' (each user's next domain: that of "
        f"their latest interaction) or '{ALL}' (every item) (default: %(default)s)",
    )
    parser.add_argument(
        "--chunk-users",
        type=int,
        default=1024,
        help="users scored at once, memory ~ chunk x items (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="'auto': CUDA if present (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


main = entry_point(build_parser, "recbole_llmemf.quick_start.recommend:run")


if __name__ == "__main__":
    sys.exit(main())
