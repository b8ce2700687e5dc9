"""``python -m recbole_llmemf.dataset_tools.cli`` runs ``llmemf-data``. The dispatcher lives in
:mod:`llmemf_cli.commands`, outside this package, so that ``llmemf-data --help`` imports no torch."""

from __future__ import annotations

import sys

from llmemf_cli.commands import data as main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
