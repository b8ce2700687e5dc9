"""Frozen item vectors (CLIP image and text) read from atomic feature files, with explicit masks.

A feature file is a RecBole atomic file with an item token and a float_seq vector, e.g.
``movie_book.itememb_img``::

    item_id:token	img_emb:float_seq
    0001234567	0.0132 -0.0211 ...

The first read also writes a binary copy beside the file, ``<file>.npy`` (float32 rows) and
``<file>.tokens`` (one item token per line); later reads memory-map it while it is newer than the
text file (a binary copy alone is accepted too, for large catalogs). Items absent from the file get
``False`` in the mask; they are never given a zero vector that would
look like data. We read these files ourselves instead of through RecBole's ``preload_weight``: that
path zero-pads short vectors, silently adds unknown tokens as new items (``alias_of_item_id``),
accepts NaN and duplicates, and would load the vectors for every baseline too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset

MODALITIES = ("image", "text")
logger = logging.getLogger(__name__)


class FeatureFileError(ValueError):
    """A feature file that cannot be trusted; the message names the file, line and item."""


@dataclass
class ItemVectors:
    path: str
    tokens: list[str]
    matrix: np.ndarray  # [n_rows, dim] float32, row i belongs to tokens[i]


def read_item_vectors(path: str, known_items: set[str] | None = None) -> ItemVectors:
    """Read and check one feature file, through its binary copy when that is up to date.

    Raises:
        FeatureFileError: missing file, bad header, wrong vector width, non-finite value,
            duplicate item, or an item that ``known_items`` (the ``.item`` file) does not list.
    """
    if _binary_is_current(path):
        return _read_binary(path, known_items)
    vectors = _read_text(path, known_items)
    _write_binary(vectors)
    return vectors


def _binary_is_current(path: str) -> bool:
    paths = [path + ".npy", path + ".tokens"]
    if not all(os.path.isfile(p) for p in paths):
        return False
    return not os.path.isfile(path) or min(map(os.path.getmtime, paths)) >= os.path.getmtime(path)


def _read_binary(path: str, known_items: set[str] | None) -> ItemVectors:
    matrix = np.load(path + ".npy", mmap_mode="r")
    with open(path + ".tokens", encoding="utf-8") as file:
        tokens = file.read().splitlines()
    where = f"{path}.npy"
    if matrix.ndim != 2 or matrix.shape[0] != len(tokens):
        raise FeatureFileError(f"{where}: shape {matrix.shape} does not match {len(tokens)} tokens")
    first_line: dict[str, int] = {}
    for lineno, token in enumerate(tokens, start=1):
        if token in first_line:
            raise FeatureFileError(
                f"{path}.tokens:{lineno}: item '{token}' already on line {first_line[token]}"
            )
        if known_items is not None and token not in known_items:
            raise FeatureFileError(
                f"{path}.tokens:{lineno}: item '{token}' is not an item of the dataset's .item file"
            )
        first_line[token] = lineno
    bad_rows = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if len(bad_rows):
        raise FeatureFileError(f"{where}: item '{tokens[bad_rows[0]]}' has a NaN or infinite value")
    return ItemVectors(path, tokens, matrix)


def _write_binary(vectors: ItemVectors) -> None:
    """Best effort: a read-only dataset folder only costs the next read its speed."""
    from recbole_llmemf.dataset_tools._io import atomic_write

    try:
        with atomic_write(vectors.path + ".npy", "wb") as file:
            np.save(file, vectors.matrix)
        with atomic_write(vectors.path + ".tokens") as file:
            file.write("\n".join(vectors.tokens) + "\n")
    except OSError as error:
        logger.warning(f"could not write a binary copy of {vectors.path}: {error}")


def _read_text(path: str, known_items: set[str] | None) -> ItemVectors:
    if not os.path.isfile(path):
        raise FeatureFileError(
            f"{path}: feature file not found; create it with `llmemf-data features` or turn the "
            "modality off (use_image / use_text: False)"
        )
    tokens: list[str] = []
    rows: list[np.ndarray] = []
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8") as file:
        _check_header(path, file.readline())
        for lineno, line in enumerate(file, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            token, _, values = line.partition("\t")
            try:
                vector = np.array(values.split(), dtype=np.float32)
            except ValueError as error:
                raise FeatureFileError(f"{path}:{lineno}: item '{token}': {error}") from None
            _check_row(path, lineno, token, vector, rows, first_line, known_items)
            first_line[token] = lineno
            tokens.append(token)
            rows.append(vector)
    if not rows:
        raise FeatureFileError(f"{path}: no vectors after the header")
    return ItemVectors(path, tokens, np.stack(rows))


def _check_header(path: str, header: str) -> None:
    fields = header.rstrip("\n").split("\t")
    types = [field.partition(":")[2] for field in fields]
    if types != ["token", "float_seq"]:
        raise FeatureFileError(
            f"{path}:1: header must be '<item field>:token<TAB><vector field>:float_seq', "
            f"got {header.strip()!r}"
        )


def _check_row(path, lineno, token, vector, rows, first_line, known_items) -> None:
    where = f"{path}:{lineno}: item '{token}'"
    if token in first_line:
        raise FeatureFileError(f"{where} already has a vector on line {first_line[token]}")
    if known_items is not None and token not in known_items:
        raise FeatureFileError(f"{where} is not an item of the dataset's .item file")
    if rows and len(vector) != rows[0].shape[0]:
        raise FeatureFileError(
            f"{where} has {len(vector)} values, expected {rows[0].shape[0]} like the first row"
        )
    if len(vector) == 0:
        raise FeatureFileError(f"{where} has no values")
    if not np.isfinite(vector).all():
        raise FeatureFileError(f"{where} has a NaN or infinite value")


class LLMEMFDataset(SequentialDataset):
    """RecBole's SequentialDataset plus the frozen item vectors LLMEMF uses.

    Config keys (LLMEMF.yaml): ``use_image`` / ``use_text`` and ``image_feature_suffix`` /
    ``text_feature_suffix``, the suffix of ``<dataset>.<suffix>`` in the dataset folder.
    """

    def _load_data(self, token: str, dataset_path: str) -> None:
        super()._load_data(token, dataset_path)
        known_items = None
        if self.item_feat is not None:
            known_items = set(self.item_feat[self.iid_field].astype(str))
        self.item_vectors = {
            modality: read_item_vectors(
                os.path.join(dataset_path, f"{token}.{self.config[f'{modality}_feature_suffix']}"),
                known_items,
            )
            for modality in MODALITIES
            if self.config[f"use_{modality}"]
        }


def load_item_matrix(dataset: LLMEMFDataset, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows aligned to RecBole's item ids, and the mask of items that have a vector.

    Returns:
        ``(matrix [n_items, dim] float32, has_vector [n_items] bool)``; rows without a vector are 0
        and ``has_vector`` is False there (id 0, the padding item, never has one).
    """
    vectors = dataset.item_vectors[modality]
    token_to_id = dataset.field2token_id[dataset.iid_field]
    ids = np.array([token_to_id.get(token, -1) for token in vectors.tokens])
    present = ids >= 0  # items that RecBole filtered out of the interactions are dropped
    n_items = dataset.item_num
    matrix = torch.zeros(n_items, vectors.matrix.shape[1])
    has_vector = torch.zeros(n_items, dtype=torch.bool)
    matrix[ids[present]] = torch.from_numpy(vectors.matrix[present])
    has_vector[ids[present]] = True
    return matrix, has_vector
