"""Frozen item vectors (CLIP image and text) read from atomic feature files, with explicit masks.

A feature file is a RecBole atomic file with an item token and a float_seq vector, e.g.
``movie_book.itememb_img``::

    item_id:token	img_emb:float_seq
    0001234567	0.0132 -0.0211 ...

The first read also writes a binary copy beside the file, ``<file>.npy`` (float32 rows),
``<file>.tokens`` (one item token per line) and ``<file>.key`` (size and SHA-256 of the text file);
later reads memory-map the copy while the text file still has that size and hash. Modification
times are not trusted: ``rsync -a``, ``cp -p`` and ``tar x`` give a new file an old one. A binary
copy alone is accepted too, for large catalogs. Items absent from the file get ``False`` in the
mask; they are never given a zero vector that would look like data. We read these files ourselves
instead of through RecBole's ``preload_weight``: that path zero-pads short vectors, silently adds
unknown tokens as new items (``alias_of_item_id``), accepts NaN and duplicates, and would load the
vectors for every baseline too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbole_llmemf.utils.errors import DataError

MODALITIES = ("image", "text")
MOSTLY_MISSING = 0.5  # a modality missing for this share of items or targets is likely a wrong file
logger = logging.getLogger(__name__)


class FeatureFileError(DataError):
    """A feature file that cannot be trusted; the message names the file, line and item."""


@dataclass
class ItemVectors:
    path: str
    tokens: list[str]
    matrix: np.ndarray  # [n_rows, dim] float32, row i belongs to tokens[i]


def read_item_vectors(
    path: str, known_items: set[str] | None = None, binary_copy: bool = True
) -> ItemVectors:
    """Read and check one feature file, through its binary copy when that holds the same content.

    ``binary_copy=False`` reads the text file (when there is one) and writes nothing.

    Raises:
        FeatureFileError: missing file, bad header, wrong vector width, non-finite value,
            duplicate item, or an item that ``known_items`` (the ``.item`` file) does not list.
    """
    if not os.path.isfile(path):
        if all(os.path.isfile(path + ext) for ext in (".npy", ".tokens")):
            return _read_binary(path, known_items)  # a binary copy alone, for large catalogs
        return _read_text(path, known_items)  # raises: not found
    if not binary_copy:
        return _read_text(path, known_items)
    key = content_key(path)
    if _stored_key(path) == key:
        return _read_binary(path, known_items)
    vectors = _read_text(path, known_items)
    _write_binary(vectors, key)
    return vectors


def content_key(path: str) -> dict:
    """What the binary copy is keyed on: the text file's size and SHA-256."""
    with open(path, "rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return {"size": os.path.getsize(path), "sha256": digest}


def _stored_key(path: str) -> dict | None:
    if not all(os.path.isfile(path + ext) for ext in (".npy", ".tokens")):
        return None
    try:
        with open(path + ".key", encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


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


def _write_binary(vectors: ItemVectors, key: dict) -> None:
    """Best effort: a read-only dataset folder only costs the next read its speed. The old key is
    removed first and the new one written last: an interrupted write leaves no key, so the next
    read parses the text again."""
    from recbole_llmemf.data.fileformat.atomic import atomic_write

    try:
        Path(vectors.path + ".key").unlink(missing_ok=True)
        with atomic_write(vectors.path + ".npy", "wb") as file:
            np.save(file, vectors.matrix)
        with atomic_write(vectors.path + ".tokens") as file:
            file.write("\n".join(vectors.tokens) + "\n")
        with atomic_write(vectors.path + ".key") as file:
            json.dump(key, file)
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
    with open(path, "rb") as file:  # bytes: a line that does not decode names its line
        _check_header(path, _decoded(path, 1, file.readline()))
        for lineno, raw in enumerate(file, start=2):
            line = _decoded(path, lineno, raw).rstrip("\n")
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


def _decoded(path: str, lineno: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FeatureFileError(
            f"{path}:{lineno}: not utf-8 text (byte {raw[error.start]:#04x} at character "
            f"{error.start + 1})"
        ) from None


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
