"""LLMEMF (model/llmemf.py), as RecBole keeps a model: one class, one file."""

from recbole_llmemf.model.llmemf import LLMEMF

__all__ = ["LLMEMF"]
