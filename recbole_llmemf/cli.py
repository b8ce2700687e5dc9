"""The work of two console commands: ``run_recbole`` (RecBole's CLI convention, which RecBole's wheel
does not install) and ``llmemf-demo`` (generate the embedded dataset, train, print per-domain test
metrics). Their parsers live in :mod:`llmemf_cli.parsers`, their entry points in
:mod:`llmemf_cli.commands`."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from llmemf_cli.parsers import build_demo_parser, build_run_parser
from recbole_llmemf.errors import reports_data_errors
from recbole_llmemf.registry import known_models

DEMO_METRICS = ("fullmrr", "ndcg@5", "ndcg@10", "hit@10")


@contextlib.contextmanager
def recbole_argv(prog: str, argv: Sequence[str] | None) -> Iterator[list[str]]:
    """RecBole's Config reads ``--key=value`` from ``sys.argv`` itself; make it see ``argv``."""
    saved = sys.argv
    if argv is not None:
        sys.argv = [prog, *argv]
    try:
        yield sys.argv[1:]
    finally:
        sys.argv = saved


@reports_data_errors
def run_recbole_main(argv: Sequence[str] | None = None) -> int:
    with recbole_argv("run_recbole", argv) as args_list:
        args, _ = build_run_parser().parse_known_args(args_list)
        if args.model not in known_models():
            print(
                f"run_recbole: unknown model '{args.model}'. Known: {', '.join(known_models())}",
                file=sys.stderr,
            )
            return 2
        from recbole.quick_start import run

        config_files = args.config_files.split() if args.config_files else None
        result = run(
            args.model,
            args.dataset,
            config_file_list=config_files,
            config_dict={"checkpoint_per_run": True},  # registry.OwnCheckpointFile
            nproc=args.nproc,
            world_size=args.world_size,
            ip=args.ip,
            port=args.port,
            group_offset=args.group_offset,
        )
    if result is not None:
        print(format_result_table(result["test_result"], DEMO_METRICS))
    return 0


def format_result_table(result: dict, metrics: Sequence[str]) -> str:
    """Rows: each domain (keys ``<domain>/<metric>``) then all domains; columns: ``metrics``."""
    domains = list(dict.fromkeys(key.split("/")[0] for key in result if "/" in key))
    header = f"{'domain':<10}" + "".join(f"{m:>10}" for m in metrics)
    lines = [header, "-" * len(header)]
    for name, prefix in [*((d, f"{d}/") for d in domains), ("all", "")]:
        lines.append(f"{name:<10}" + "".join(f"{result[prefix + m]:>10.4f}" for m in metrics))
    return "\n".join(lines)


ABLATIONS = {
    "full": {},
    "ids": {"use_image": False, "use_text": False},
    "no-image": {"use_image": False},
    "no-text": {"use_text": False},
}

DEMO_CONFIG = {"hidden_size": 64, "inner_size": 64, "stopping_step": 3, "show_progress": False}


@reports_data_errors
def demo_main(argv: Sequence[str] | None = None) -> int:
    args = build_demo_parser().parse_args(argv)
    from recbole.quick_start import run_recbole

    from recbole_llmemf.dataset_tools.synthetic import SyntheticSpec, generate

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
