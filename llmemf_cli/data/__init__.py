"""``llmemf-data <command>``: one module per subcommand, each with its parser and entry point."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> one-line help; the subcommand's parser and main are in llmemf_cli/data/<name>.py
DATA_COMMANDS = {
    "synthetic": "generate the small offline two-domain demo dataset",
    "amazon": "two raw Amazon domains -> RecBole cross-domain files",
    "c2dsr": "import a public C2DSR split (Alist/Blist/valid/test files)",
    "check": "leakage and sanity checks of a cross-domain dataset",
    "enrich": "LLM enrichment of item titles, or DMESR's three views (cached, resumable)",
    "features": "CLIP / sentence-transformers item vectors (cached, resumable)",
}


def data_usage() -> str:
    lines = [
        "usage: llmemf-data <command> [options]   (llmemf-data <command> --help for details)",
        "",
    ]
    lines += [f"  {name:<10} {help_text}" for name, help_text in DATA_COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``llmemf-data <command> [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(data_usage())
        return 0
    if argv[0] not in DATA_COMMANDS:
        print(f"llmemf-data: unknown command '{argv[0]}'\n\n{data_usage()}", file=sys.stderr)
        return 2
    return importlib.import_module(f"llmemf_cli.data.{argv[0]}").main(argv[1:])
