"""``llmemf-data amazon``: its arguments; ``main`` parses them, then runs the command."""

from __future__ import annotations

import argparse

from llmemf_cli.common import entry_point
from llmemf_cli.options import add_common_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data amazon",
        description="Two raw Amazon review categories -> RecBole cross-domain files "
        "(<out>/<name>/<name>.item, .inter, .train/.valid/.test.inter, <name>.yaml, stats.md): "
        "users active in both domains, iterated k-core, at least --min-domain-items items of each "
        "domain per user, merged time order, latest sequences to valid/test.",
        epilog="Files looked for in --raw-dir: reviews_<Cat>_5.json.gz, <Cat>_5.json.gz, "
        "reviews_<Cat>.json.gz or <Cat>.json.gz, and meta_<Cat>.json.gz (2014 or 2018 release).",
    )
    parser.add_argument("--source", required=True, help="first category, e.g. Movies_and_TV")
    parser.add_argument("--target", required=True, help="second category, e.g. Books")
    parser.add_argument("--raw-dir", required=True, help="folder of the downloaded .json.gz files")
    parser.add_argument("--name", help="dataset name (default: <source>_<target>, lower case)")
    parser.add_argument(
        "--domain-names",
        nargs=2,
        metavar=("SOURCE", "TARGET"),
        help="domain tokens in the .item file (default: the category names)",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--min-user-inter",
        type=int,
        default=10,
        help="k-core: interactions per user (default: %(default)s)",
    )
    parser.add_argument(
        "--min-item-inter",
        type=int,
        default=10,
        help="k-core: interactions per item (default: %(default)s)",
    )
    parser.add_argument(
        "--min-domain-items",
        type=int,
        default=3,
        help="items of each domain per user (default: %(default)s; at least 1)",
    )
    parser.add_argument(
        "--valid-ratio",
        type=float,
        default=0.15,
        help="share of users, ending before the test users, to valid (default: %(default)s)",
    )
    parser.add_argument(
        "--test-ratio",
        type=float,
        default=0.15,
        help="share of users whose sequences end latest, to test (default: %(default)s)",
    )
    parser.add_argument(
        "--eval-history-in-train",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train on the valid/test users' histories "
        "(default: yes, so that user-based baselines know every user)",
    )
    return parser


main = entry_point(build_parser, "recbole_llmemf.dataset_tools.amazon:run")
