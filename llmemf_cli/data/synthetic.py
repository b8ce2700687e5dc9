"""``llmemf-data synthetic``: its arguments; ``main`` parses them, then runs the command."""

from __future__ import annotations

import argparse

from llmemf_cli.common import entry_point
from llmemf_cli.options import DEMO_DATASET, DEMO_SEED, DEMO_USERS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data synthetic",
        description="Generate the small two-domain demo dataset (offline, deterministic).",
    )
    parser.add_argument(
        "--out", default="dataset", help="parent folder (RecBole's data_path; default: %(default)s)"
    )
    parser.add_argument(
        "--name",
        default=DEMO_DATASET,
        help="dataset name, the folder written (default: %(default)s)",
    )
    parser.add_argument(
        "--users", type=int, default=DEMO_USERS, help="users (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEMO_SEED, help="random seed (default: %(default)s)"
    )
    return parser


main = entry_point(build_parser, "recbole_llmemf.dataset_tools.synthetic:run")
