"""Shared fixtures: RecBole writes log/ and saved/ into the working directory and reads sys.argv."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import recbole_llmemf  # noqa: F401  registers LLMEMF before any test builds a Config
from recbole_llmemf.dataset_tools.synthetic import SyntheticSpec, generate

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY_SPEC = SyntheticSpec(
    name="tiny", n_users=80, items_per_group=6, n_groups=3, min_len=6, max_len=9, feature_dim=16
)
TINY_CONFIG = {
    "hidden_size": 16,
    "inner_size": 16,
    "embedding_size": 16,
    "epochs": 1,
    "train_batch_size": 64,
    "eval_batch_size": 64,
    "show_progress": False,
    "use_gpu": False,
    "state": "WARNING",
    "MAX_ITEM_LIST_LENGTH": 8,
}


@pytest.fixture(autouse=True)
def isolated_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])


@dataclass
class TinyDataset:
    name: str
    data_path: Path
    config: dict


@pytest.fixture
def tiny_dataset(tmp_path) -> TinyDataset:
    """A seeded two-domain dataset (80 users, 2 x 18 items, some without image or text)."""
    data_path = tmp_path / "dataset"
    generate(TINY_SPEC, data_path)
    return TinyDataset(TINY_SPEC.name, data_path, {**TINY_CONFIG, "data_path": str(data_path)})
