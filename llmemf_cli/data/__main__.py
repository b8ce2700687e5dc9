"""``python -m llmemf_cli.data <command>`` runs ``llmemf-data``."""

import sys

from llmemf_cli.data import main

sys.exit(main())
