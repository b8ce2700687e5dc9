"""``llmemf-data c2dsr``: its arguments; ``main`` parses them, then runs the command."""

from __future__ import annotations

import argparse

from llmemf_cli.common import entry_point
from llmemf_cli.options import add_common_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data c2dsr",
        description="Import a C2DSR split (Alist.txt, Blist.txt, validdata_new.txt, "
        "testdata_new.txt, "
        "optional traindata_new.txt, userlist.txt, titles*.tsv) into RecBole cross-domain files "
        "<out>/<name>/: C2DSR's valid/test targets kept exactly, items as ASINs. Without the train "
        "file the training cases are rebuilt from the valid/test users' histories (said loudly).",
    )
    parser.add_argument("input_dir", help="folder of the C2DSR split files")
    parser.add_argument(
        "--name", help="dataset name (default: the input folder's name, lower case)"
    )
    parser.add_argument(
        "--domain-names",
        nargs=2,
        metavar=("A", "B"),
        help="domain tokens of Alist and Blist items (default: from the folder name, "
        "food_kitchen -> Food Kitchen; else A B)",
    )
    parser.add_argument(
        "--titles",
        nargs="*",
        metavar="TSV",
        help="asin<TAB>title files (default: titles*.tsv in the input folder; "
        "--titles alone: none)",
    )
    parser.add_argument(
        "--eval-history-in-train",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also train on the valid/test users' histories (default: "
        "only when there is no train file)",
    )
    add_common_arguments(parser)
    return parser


main = entry_point(build_parser, "recbole_llmemf.dataset_tools.c2dsr:run")
