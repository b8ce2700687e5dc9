"""``llmemf-data``: one entry point, one subcommand per module of this package."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from recbole_llmemf.errors import reports_data_errors

SUBCOMMANDS = {
    "synthetic": ("synthetic", "generate the small offline two-domain demo dataset"),
    "amazon": ("amazon", "two raw Amazon domains -> RecBole cross-domain files"),
    "c2dsr": ("c2dsr", "import a public C2DSR split (Alist/Blist/valid/test files)"),
    "check": ("checks", "leakage and sanity checks of a cross-domain dataset"),
    "enrich": ("enrich", "enrich item titles with an LLM (cached, resumable)"),
    "features": ("features", "CLIP / sentence-transformers item vectors (cached, resumable)"),
}


def usage() -> str:
    lines = [
        "usage: llmemf-data <command> [options]   (llmemf-data <command> --help for details)",
        "",
    ]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


@reports_data_errors
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in SUBCOMMANDS:
        print(f"llmemf-data: unknown command '{argv[0]}'\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"recbole_llmemf.dataset_tools.{SUBCOMMANDS[argv[0]][0]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
