"""Console commands of recbole-llmemf: ``run_recbole``, ``llmemf-demo``, ``llmemf-bench``, ``llmemf-data``.

A package of its own, beside ``recbole_llmemf``: importing ``recbole_llmemf`` (or any of its
modules) registers LLMEMF with RecBole, which imports torch and RecBole and takes tens of seconds on
a busy machine. Here the arguments are parsed with the standard library alone (:mod:`.parsers`), so
``--help`` and a wrong argument answer at once; :mod:`.commands` imports the work after parsing.
"""
