"""Console entry points: parse first (standard library only), then import the command and run it.

``--help`` and argument errors exit inside ``parse_args`` before torch or RecBole is imported; the
command's own ``main(argv)`` then parses the same arguments again with the same parser (cheap).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Sequence

from llmemf_cli import parsers


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


def _argv(argv: Sequence[str] | None) -> list[str]:
    return list(sys.argv[1:] if argv is None else argv)


def _parse_then_run(parse: Callable[[list[str]], object], command: str, argv) -> int:
    """Parse ``argv`` (standard library only), then import ``module:function`` and run it."""
    argv = _argv(argv)
    parse(argv)
    quiet_upstream_warnings()
    module, _, function = command.partition(":")
    return getattr(importlib.import_module(module), function)(argv)


def run_recbole(argv: Sequence[str] | None = None) -> int:
    """``run_recbole``: RecBole's command-line convention, LLMEMF registered."""
    # parse_known_args: every other --key=value is RecBole's, which its Config reads
    parse = parsers.build_run_parser().parse_known_args
    return _parse_then_run(parse, "recbole_llmemf.cli:run_recbole_main", argv)


def demo(argv: Sequence[str] | None = None) -> int:
    """``llmemf-demo``."""
    return _parse_then_run(
        parsers.build_demo_parser().parse_args, "recbole_llmemf.cli:demo_main", argv
    )


def bench(argv: Sequence[str] | None = None) -> int:
    """``llmemf-bench``."""
    return _parse_then_run(
        parsers.build_bench_parser().parse_args, "recbole_llmemf.bench:main", argv
    )


def recommend(argv: Sequence[str] | None = None) -> int:
    """``llmemf-recommend``."""
    parse = parsers.build_recommend_parser().parse_args
    return _parse_then_run(parse, "recbole_llmemf.recommend:main", argv)


def data(argv: Sequence[str] | None = None) -> int:
    """``llmemf-data <command>``: one subcommand per module of ``recbole_llmemf.dataset_tools``."""
    argv = _argv(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(parsers.data_usage())
        return 0
    if argv[0] not in parsers.DATA_COMMANDS:
        print(
            f"llmemf-data: unknown command '{argv[0]}'\n\n{parsers.data_usage()}", file=sys.stderr
        )
        return 2
    module_name, _, build_parser = parsers.DATA_COMMANDS[argv[0]]
    build_parser().parse_args(argv[1:])
    quiet_upstream_warnings()  # importing the package imports RecBole and ray
    module = importlib.import_module(f"recbole_llmemf.dataset_tools.{module_name}")
    from recbole_llmemf.errors import reports_data_errors

    return reports_data_errors(module.main)(argv[1:])
