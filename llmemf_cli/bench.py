"""``llmemf-bench``: its arguments, and the entry point that runs ``recbole_llmemf.bench``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llmemf_cli.common import run_command

DEFAULT_MODELS = "LLMEMF,SASRec,GRU4Rec,SRGNN,BPR,ItemKNN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-bench",
        description="Train and test LLMEMF and RecBole baselines on identical terms; write a "
        "per-domain table (markdown), JSON and a bar chart.",
    )
    parser.add_argument("--dataset", required=True, help="dataset name (folder under --data-path)")
    parser.add_argument(
        "--data-path", default="dataset", help="RecBole's data_path (default: %(default)s)"
    )
    parser.add_argument(
        "--models",
        default=DEFAULT_MODELS,
        help="comma list of RecBole models and labels: LLMEMF's variants (LLMEMF-ids, "
        "LLMEMF+profile, ...: recbole_llmemf/bench/specs.py), <Model>-indomain, <Model>+DMESR "
        "and its ablations <Model>+DMESR-noalign, -llm-only, -title-only (default: %(default)s)",
    )
    parser.add_argument(
        "--protocol",
        default="full",
        help="full | sampled999 (properties/protocol/; default: %(default)s)",
    )
    parser.add_argument(
        "--seeds",
        default="2020",
        help="comma list of seeds; mean ± std over them (default: %(default)s)",
    )
    parser.add_argument(
        "--ablations", action="store_true", help="add the paper's LLMEMF ablation runs"
    )
    parser.add_argument("--epochs", type=int, help="override the protocol's epochs")
    parser.add_argument("--config-files", nargs="*", default=[], help="extra yaml for every model")
    parser.add_argument(
        "--set",
        nargs="*",
        action="extend",  # --set a=1 --set b=2 keeps both
        default=[],
        metavar="KEY=VALUE",
        help="extra config for every model, e.g. --set hidden_size=64 (repeatable); "
        "MODEL.KEY=VALUE for one model or label",
    )
    parser.add_argument("--out", default="results", help="output folder (default: %(default)s)")
    parser.add_argument("--name", help="file stem (default: <dataset>-<protocol>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="read back the runs the JSON already holds with the same effective config and "
        "continue an interrupted run from its last checkpoint",
    )
    parser.add_argument(
        "--retest-from",
        metavar="STEM",
        help="train nothing: test the best checkpoint of every finished run of <out>/STEM.json "
        "(same models, seeds and config, another --protocol) under --protocol; the rows keep "
        "that run's training record and early stopping",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="per run: stop after the epoch when the next would overrun (mean epoch time so far) "
        "and test the best checkpoint; a later --resume with a larger budget, or none, goes on",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``llmemf-bench``: parse (standard library only), then run ``recbole_llmemf.bench.run:run``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return run_command("recbole_llmemf.bench.run:run", args, " ".join(argv))


if __name__ == "__main__":
    sys.exit(main())
