"""``run_recbole``: RecBole's command-line convention with the plugin registered."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llmemf_cli.common import DEMO_METRICS, format_result_table, run_command
from llmemf_cli.options import DEMO_DATASET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_recbole",
        description="Train and test a RecBole model (LLMEMF or any of RecBole's own).",
        epilog="Any other --key=value is passed to RecBole's Config, e.g. --epochs=5 --gpu_id=0. "
        "RecBole writes log/, log_tensorboard/ and saved/ (checkpoints) into the current folder.",
    )
    parser.add_argument(
        "--model", "-m", default="LLMEMF", help="model class name (default: %(default)s)"
    )
    parser.add_argument(
        "--dataset",
        "-d",
        default=DEMO_DATASET,
        help="dataset name, a folder under --data_path (default: %(default)s)",
    )
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="processes (GPUs) on this machine (default: %(default)s)",
    )
    # several machines, as RecBole's run_recbole.py: each starts --nproc processes, ranks from offset
    parser.add_argument(
        "--world_size",
        type=int,
        default=-1,
        help="processes on all machines (default: %(default)s, this machine's --nproc)",
    )
    parser.add_argument(
        "--ip", default="localhost", help="address of the first machine (default: %(default)s)"
    )
    parser.add_argument(
        "--port", default="5678", help="free port on the first machine (default: %(default)s)"
    )
    parser.add_argument(
        "--group_offset",
        type=int,
        default=0,
        help="rank of this machine's first process (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``run_recbole``: parse (standard library only), then :func:`run`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # parse_known_args: every other --key=value is RecBole's, which its Config reads from argv
    args, _ = build_parser().parse_known_args(argv)
    return run_command("llmemf_cli.run_recbole:run", args, argv)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Train and test with RecBole's ``run``; RecBole's Config reads ``argv``."""
    from recbole.quick_start import run as recbole_run

    from recbole_llmemf.utils.argv import recbole_argv
    from recbole_llmemf.utils.models import known_models

    with recbole_argv("run_recbole", argv):
        if args.model not in known_models():
            print(
                f"run_recbole: unknown model '{args.model}'. Known: {', '.join(known_models())}",
                file=sys.stderr,
            )
            return 2
        config_files = args.config_files.split() if args.config_files else None
        result = recbole_run(
            args.model,
            args.dataset,
            config_file_list=config_files,
            config_dict={"checkpoint_per_run": True},  # trainer/plugin_trainer.OwnCheckpointFile
            nproc=args.nproc,
            world_size=args.world_size,
            ip=args.ip,
            port=args.port,
            group_offset=args.group_offset,
        )
    if result is not None:
        print(format_result_table(result["test_result"], DEMO_METRICS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
