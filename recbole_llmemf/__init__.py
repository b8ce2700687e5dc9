"""recbole-llmemf: LLM-EMF (LLM-enhanced multimodal cross-domain sequential recommendation) for RecBole.

Importing the package installs the hook table (hooks.py), which registers ``LLMEMF`` with RecBole,
so that ``get_model('LLMEMF')``, ``Config(model='LLMEMF', ...)`` and ``run_recbole(model='LLMEMF',
...)`` work; every other row changes nothing unless a config sets the key it names.
"""

from recbole_llmemf import hooks

hooks.install()  # first: its first rows repair numpy and ray before RecBole is imported

from recbole_llmemf.model import LLMEMF, ContentCosine  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ContentCosine", "GRU4RecDMESR", "LLMEMF", "SASRecDMESR", "register", "__version__"]


def register() -> None:
    """Install the hook table (done on import); safe to call again."""
    hooks.install()


def __getattr__(name: str):
    """``SASRecDMESR`` and ``GRU4RecDMESR``, imported when first named (model/__init__.py)."""
    if name in ("GRU4RecDMESR", "SASRecDMESR"):
        from recbole_llmemf import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
