"""The plugin's models, as RecBole keeps a model: one class, one file."""

from recbole_llmemf.model.content_cosine import ContentCosine
from recbole_llmemf.model.llmemf import LLMEMF

__all__ = ["ContentCosine", "LLMEMF"]
