"""The plugin's models, as RecBole keeps a model: one class, one file. The DMESR backbones are
imported when first named: their module imports RecBole's sequential models, whose sine.py turns
autograd's anomaly detection on."""

from recbole_llmemf.model.content_cosine import ContentCosine
from recbole_llmemf.model.llmemf import LLMEMF

__all__ = ["ContentCosine", "GRU4RecDMESR", "LLMEMF", "SASRecDMESR"]


def __getattr__(name: str):
    if name in ("GRU4RecDMESR", "SASRecDMESR"):
        from recbole_llmemf.model import dmesr

        return getattr(dmesr, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
