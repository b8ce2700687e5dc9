"""The console commands: one module per command (``llmemf_cli/data/`` for ``llmemf-data``'s
subcommands), each with its parser and ``main(argv)``. Parsing needs the standard library only, so
``--help`` and argument errors exit before torch or RecBole is imported; ``main`` then imports the
command's module and runs it (llmemf_cli/common.py)."""
