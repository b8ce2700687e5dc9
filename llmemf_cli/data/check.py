"""``llmemf-data check``: its arguments; ``main`` parses them, then runs the command."""

from __future__ import annotations

import argparse

from llmemf_cli.common import entry_point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data check",
        description="Sanity and leakage checks of a dataset folder the plugin can train on, in "
        "either layout (<name>.inter, or the split files <name>.{train,valid,test}.inter of "
        "`llmemf-data amazon` / `c2dsr`): every line complete and numeric where it must be, every "
        "item listed once with a domain, domains do not overlap and each has interactions and "
        "test cases; for split files also no valid/test target in the same user's training "
        "input and time order respected; item ids are ASINs where our tools wrote the folder. "
        "Feature files (<name>.itememb_*): width, NaN, duplicate and unknown items, coverage per "
        "domain. Exit status 1 when a check fails.",
    )
    parser.add_argument("folder", help="dataset folder <data_path>/<name> holding <name>.item etc.")
    return parser


main = entry_point(build_parser, "recbole_llmemf.dataset_tools.checks:run")
