"""What every console command does after parsing: quiet RecBole's known warnings, import the
command's module (torch and RecBole only now, after ``--help`` and argument errors have exited) and
run it, a ``DataError`` becoming its message and exit status 1."""

from __future__ import annotations

import argparse
import importlib
import warnings
from collections.abc import Callable, Sequence

DEMO_METRICS = (
    "fullmrr",
    "ndcg@5",
    "ndcg@10",
    "hit@10",
)  # the columns run_recbole and llmemf-demo print


def entry_point(build_parser: Callable[[], argparse.ArgumentParser], target: str) -> Callable:
    """A command's ``main(argv=None) -> int``: parse with ``build_parser`` (standard library only),
    then run ``target`` (``module:function``) on the parsed arguments."""

    def main(argv: Sequence[str] | None = None) -> int:
        return run_command(target, build_parser().parse_args(argv))

    main.__doc__ = f"Parse, then run ``{target}``."
    return main


def run_command(target: str, args: argparse.Namespace, *extra) -> int:
    """Run ``module:function`` (``function(args, *extra)``), imported now."""
    quiet_upstream_warnings()
    module, _, function = target.partition(":")
    from recbole_llmemf.utils.errors import reports_data_errors

    return reports_data_errors(getattr(importlib.import_module(module), function))(args, *extra)


def quiet_upstream_warnings() -> None:
    """Silence the warnings that RecBole 1.2.1 and its ray print on every run, and nothing else:
    pandas' chained assignment with ``inplace=True`` (recbole/data/dataset/dataset.py L648, L650),
    the deprecated ``torch.cuda.amp.GradScaler`` (recbole/trainer/trainer.py L235) and
    setuptools' notice that ``pkg_resources`` is deprecated (ray/_private/parameter.py L4)."""
    warnings.filterwarnings(
        "ignore",
        message="A value is trying to be set on a copy of a DataFrame or Series through chained "
        "assignment",
        category=FutureWarning,
        module=r"recbole\.data\.dataset\.dataset",
    )
    warnings.filterwarnings(
        "ignore",
        message=r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated",
        category=FutureWarning,
        module=r"recbole\.trainer\.trainer",
    )
    warnings.filterwarnings(
        "ignore",
        message="pkg_resources is deprecated as an API",
        category=UserWarning,
        module=r"ray\._private\.parameter",
    )


def format_result_table(result: dict, metrics: Sequence[str]) -> str:
    """Rows: each domain (keys ``<domain>/<metric>``) then all domains; columns: ``metrics``."""
    domains = list(dict.fromkeys(key.split("/")[0] for key in result if "/" in key))
    header = f"{'domain':<10}" + "".join(f"{m:>10}" for m in metrics)
    lines = [header, "-" * len(header)]
    for name, prefix in [*((d, f"{d}/") for d in domains), ("all", "")]:
        lines.append(f"{name:<10}" + "".join(f"{result[prefix + m]:>10.4f}" for m in metrics))
    return "\n".join(lines)
