"""``llmemf-demo``: generate the embedded dataset (offline), train a model on it with RecBole and print
its per-domain test metrics."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from llmemf_cli.common import DEMO_METRICS, format_result_table, run_command
from llmemf_cli.options import DEMO_USERS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-demo",
        description="Generate the embedded two-domain dataset (offline) and train and test a model "
        "on it; prints per-domain test MRR (untruncated: fullmrr), NDCG@5, NDCG@10 and Hit@10.",
        epilog="Writes the dataset under --data-path and RecBole's log/, log_tensorboard/ and "
        "saved/ into the current folder.",
    )
    parser.add_argument(
        "--model",
        default="LLMEMF",
        help="LLMEMF or a RecBole model, e.g. SASRec (default: %(default)s)",
    )
    parser.add_argument(
        "--data-path",
        default="dataset",
        help="where the dataset folder is written (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=int, default=6, help="training epochs (default: %(default)s)"
    )
    parser.add_argument(
        "--users",
        type=int,
        default=DEMO_USERS,
        help="users of a newly generated dataset (default: %(default)s)",
    )
    parser.add_argument(
        "--ablation",
        choices=["full", "ids", "no-image", "no-text"],
        default="full",
        help="LLMEMF modalities: all, ids only, without image or without text (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu"],
        default="auto",
        help="'auto' uses CUDA when present (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``llmemf-demo``: parse (standard library only), then :func:`run`."""
    args = build_parser().parse_args(argv)
    return run_command("llmemf_cli.demo:run", args)


ABLATIONS = {
    "full": {},
    "ids": {"use_image": False, "use_text": False},
    "no-image": {"use_image": False},
    "no-text": {"use_text": False},
}

DEMO_CONFIG = {"hidden_size": 64, "inner_size": 64, "stopping_step": 3, "show_progress": False}


def run(args: argparse.Namespace) -> int:
    """``llmemf-demo`` (its arguments: llmemf_cli/demo.py)."""
    import logging

    from recbole.quick_start import run_recbole

    from recbole_llmemf.dataset_tools.synthetic import SyntheticSpec, generate
    from recbole_llmemf.utils.argv import recbole_argv

    spec = SyntheticSpec(n_users=args.users)
    if not (Path(args.data_path) / spec.name / f"{spec.name}.yaml").is_file():  # written last
        print(f"generating {generate(spec, args.data_path)}")
    config = {
        **DEMO_CONFIG,
        "epochs": args.epochs,
        "data_path": args.data_path,
        "use_gpu": args.device == "auto",
    }
    if args.model == "LLMEMF":
        config.update(ABLATIONS[args.ablation])
    with recbole_argv("llmemf-demo", []):
        result = run_recbole(model=args.model, dataset=spec.name, config_dict=config)
    logging.shutdown()
    print(
        f"\n{args.model} ({args.ablation if args.model == 'LLMEMF' else 'RecBole'}) on "
        f"{spec.name}, test, full ranking within the target domain:"
    )
    print(format_result_table(result["test_result"], DEMO_METRICS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
