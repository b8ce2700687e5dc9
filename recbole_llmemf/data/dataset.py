"""LLMEMF's dataset (RecBole's SequentialDataset plus frozen item vectors) and the check of a
dataset's atomic files before RecBole reads them, for any model whose config names a
``domain_field`` (:func:`loading_report`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from recbole.data.dataset import Dataset, SequentialDataset

from recbole_llmemf.data.fileformat.checks import loading_report
from recbole_llmemf.data.fileformat.item_vectors import ItemVectors, read_item_vectors
from recbole_llmemf.data.fileformat.reader import Layout, read_folder
from recbole_llmemf.utils.errors import DataError

MODALITIES = ("image", "text")
MOSTLY_MISSING = 0.5  # a modality missing for this share of items or targets is likely a wrong file
logger = logging.getLogger(__name__)


def check_files_before_loading(
    load_data: Callable, dataset: Dataset, token: str, dataset_path: str
) -> None:
    """``Dataset._load_data`` hook, on when the config names a ``domain_field``: check the atomic
    files RecBole is about to read, for every model.

    Raises ``DataError`` (``file:line: what is wrong``) where RecBole would silently load something
    else than the file says: a line with a missing field (RecBole fills a missing time with the
    column's mean, which can make that item a test target), a non-numeric or empty value, a
    history item without a domain. Logs a warning for interactions whose item ``.item`` does not
    list (RecBole drops them) and for a domain without interactions or test cases.
    """
    config = dataset.config
    if config["domain_field"] is not None and os.path.isdir(dataset_path):
        layout = Layout(
            folder=Path(dataset_path),
            name=token,
            uid=config["USER_ID_FIELD"],
            iid=config["ITEM_ID_FIELD"],
            time=config["TIME_FIELD"],
            domain=config["domain_field"],
            benchmark=tuple(config["benchmark_filename"] or ()),
            histories=tuple(config["alias_of_item_id"] or ()),
            field_separator=config["field_separator"],
            seq_separator=config["seq_separator"],
            encoding=config["encoding"],
            load_col=config["load_col"],
            unload_col=config["unload_col"],
        )
        report = loading_report(read_folder(dataset_path, layout, all_interactions=False))
        for warning in report.warnings:
            logger.warning(warning)
        if report.errors:
            raise DataError("\n".join(report.errors))
    load_data(dataset, token, dataset_path)


class LLMEMFDataset(SequentialDataset):
    """RecBole's SequentialDataset plus the frozen item vectors LLMEMF uses.

    Config keys (LLMEMF.yaml): ``use_image`` / ``use_text`` and ``image_feature_suffix`` /
    ``text_feature_suffix``, the suffix of ``<dataset>.<suffix>`` in the dataset folder;
    ``shuffled_modalities``, a control that keeps which items have a vector but not what it says.
    Logs how many items and test targets have no vector of each modality (masked, by design).
    """

    def _load_data(self, token: str, dataset_path: str) -> None:
        super()._load_data(token, dataset_path)
        known_items = None
        if self.item_feat is not None:
            known_items = set(self.item_feat[self.iid_field].astype(str))
        self.item_vectors = {
            name: read_item_vectors(os.path.join(dataset_path, f"{token}.{suffix}"), known_items)
            for name, suffix in self.vector_files().items()
        }
        # Content-destroying control: each vector goes to another item that has one (seeded), so
        # "has a title / an image" stays and "what it says" is gone.
        for modality in self.config["shuffled_modalities"] or ():
            if modality in self.item_vectors:
                vectors = self.item_vectors[modality]
                order = np.random.default_rng(self.config["seed"]).permutation(len(vectors.tokens))
                self.item_vectors[modality] = ItemVectors(
                    vectors.path, vectors.tokens, np.asarray(vectors.matrix)[order]
                )
        self._log_coverage()

    def vector_files(self) -> dict[str, str]:
        """The item vectors to read: name -> suffix of ``<dataset>.<suffix>``; with LLMEMF's
        ``item_enhancer: dmesr``, DMESR's views too, and those the content profile reads."""
        profiled = self.config["content_profile_modalities"] or ()
        files = {
            modality: self.config[f"{modality}_feature_suffix"]
            for modality in MODALITIES
            if self.config[f"use_{modality}"] or modality in profiled
        }
        if self.config["item_enhancer"] == "dmesr":
            files.update(self.config["dmesr_views"])
        return files

    def _log_coverage(self) -> None:
        items = [] if self.item_feat is None else self.item_feat[self.iid_field].astype(str)
        targets = self._test_targets()
        for modality, vectors in self.item_vectors.items():
            have = set(vectors.tokens)
            no_item = sum(token not in have for token in items)
            no_target = sum(token not in have for token in targets)
            share = max(no_item / max(len(items), 1), no_target / max(len(targets), 1))
            logger.log(
                logging.WARNING if share >= MOSTLY_MISSING else logging.INFO,
                f"{modality} vectors ({os.path.basename(vectors.path)}): "
                f"{no_item:,} of {len(items):,} items and {no_target:,} of {len(targets):,} test "
                "targets have none (masked)",
            )

    def _test_targets(self) -> list[str]:
        """Item tokens of the test cases: the last benchmark file's items, or each user's last
        interaction in time under a leave-one-out split (``eval_args: {split: {LS: ...}}``)."""
        feat, iid = self.inter_feat, self.iid_field
        if self.benchmark_filename_list is not None:
            return feat[iid].iloc[len(feat) - self.file_size_list[-1] :].astype(str).tolist()
        if "LS" not in ((self.config["eval_args"] or {}).get("split") or {}):
            return []
        if self.time_field in feat:
            feat = feat.sort_values(self.time_field, kind="stable")
        return feat.groupby(self.uid_field, sort=False)[iid].last().astype(str).tolist()


class DMESRDataset(LLMEMFDataset):
    """The frozen views of DMESR's enhancer (``dmesr_views``: name -> suffix, model/dmesr.py)."""

    def vector_files(self) -> dict[str, str]:
        return dict(self.config["dmesr_views"])


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
