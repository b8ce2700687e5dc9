"""LLMEMF's training data: each training sequence once, with a target at every position.

RecBole's ``SequentialDataset`` turns a history ``i1 .. in`` into one row per prefix
(``<i1> | i2``, ``<i1, i2> | i3``, ...), each encoded on its own. Under causal attention (and the
per-domain views' masks, model.py) the encoder output at position t of the longest row depends on
items up to t only, so that one row gives every shorter row's (history, target) pair at once, as
SASRec's and C2DSR's own training does. :func:`per_position_rows` keeps exactly the training pairs
of the prefix rows:

- a row that the next row extends by its target (same user, one item longer, same items) is
  dropped; its pair becomes a position of the row that ends its chain;
- where a history is longer than ``MAX_ITEM_LIST_LENGTH``, RecBole slides a window: the history of
  such a row is not a prefix of any other row's, so the row stays, with a target at its last
  position only.

The kept rows get a field :data:`NEXT_ITEMS` ``[L]``: the target after each position, 0 where a
position carries no pair (padding, and the positions before a window's first pair). Turned on by
``train_per_position: True`` (LLMEMF.yaml): :class:`PerPositionTrainDataLoader` then stands in for
RecBole's train loader (hooks.py). Valid and test data, and the samplers built from the prefix
rows, are untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

NEXT_ITEMS = "next_item_id_list"
logger = logging.getLogger(__name__)


def per_position_rows(dataset: SequentialDataset) -> SequentialDataset:
    """A copy of ``dataset`` whose rows carry the prefix rows' pairs as targets per position.

    Raises:
        ValueError: a row with an empty history (no position to put its target at).
    """
    inter = dataset.inter_feat
    seq = inter[dataset.item_id_list_field]  # [N L]
    length = inter[dataset.item_list_length_field]  # [N]
    target = inter[dataset.iid_field]  # [N]
    user = inter[dataset.uid_field]  # [N]
    if len(length) and int(length.min()) < 1:
        raise ValueError("per-position training needs a history of at least one item in every row")
    width = seq.shape[1]
    steps = torch.arange(width)

    # row i + 1 extends row i: the same user, one item longer, row i's history then row i's target
    shorter = length[:-1]
    longer = seq[1:]
    extends = (
        (user[1:] == user[:-1])
        & (length[1:] == shorter + 1)
        & (torch.where(steps < shorter[:, None], longer, 0) == seq[:-1]).all(1)
        & (longer.gather(1, shorter.clamp(max=width - 1)[:, None]).squeeze(1) == target[:-1])
    )
    keep = torch.cat([~extends, torch.tensor([True])])  # the last row of each chain
    starts = torch.cat([torch.tensor([True]), ~extends])  # the first row of each chain
    first_length = length[starts][torch.cumsum(starts, 0) - 1]  # [N] of each row's chain

    kept, kept_length = seq[keep], length[keep]
    next_items = torch.cat([kept[:, 1:], kept.new_zeros(len(kept), 1)], dim=1)  # [M L]
    next_items[torch.arange(len(kept)), kept_length - 1] = target[keep]
    # the chain's rows had lengths first .. last: their targets sit at positions first - 1 .. last - 1
    has_pair = (steps >= first_length[keep, None] - 1) & (steps < kept_length[:, None])
    next_items = next_items * has_pair

    rows = dataset.copy(inter[keep])
    rows.inter_feat.update(Interaction({NEXT_ITEMS: next_items}))
    # copy.copy shares these dicts with the prefix rows' dataset, which must not see the new field
    rows.field2type, rows.field2source = dict(rows.field2type), dict(rows.field2source)
    rows.field2seqlen = dict(rows.field2seqlen)
    rows.set_field_property(NEXT_ITEMS, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, width)
    logger.info(
        f"per-position training: {len(seq)} prefix rows -> {len(kept)} sequences, "
        f"{int(has_pair.sum())} (history, target) pairs"
    )
    return rows


class PerPositionTrainDataLoader(TrainDataLoader):
    """RecBole's train loader over :func:`per_position_rows` of the prefix rows it is given.

    With ``train_batch_pairs: True`` (LLMEMF.yaml) a batch holds ``train_batch_size`` pairs on
    average, as a batch of prefix rows does, so an epoch takes as many optimizer steps as on the
    prefix rows; with False, ``train_batch_size`` sequences (SASRec's and C2DSR's own code).
    """

    def __init__(self, config, dataset: SequentialDataset, sampler, shuffle: bool = False):
        super().__init__(config, per_position_rows(dataset), sampler, shuffle=shuffle)

    def _init_batch_size_and_step(self) -> None:
        super()._init_batch_size_and_step()
        self.step = sequences_per_batch(self.config, self._dataset)
        self.set_batch_size(self.step)


def training_pairs(dataset) -> int:
    """The (history, target) pairs an epoch trains on: one per row, or per position."""
    if NEXT_ITEMS not in dataset.inter_feat:
        return len(dataset)
    return int((dataset.inter_feat[NEXT_ITEMS] > 0).sum())


def training_target_counts(dataset) -> torch.Tensor:
    """``[item_num]``: how often each item is the target of a training pair, in prefix rows or
    per-position rows alike (the latter keep one row per chain, its pairs in NEXT_ITEMS)."""
    inter = dataset.inter_feat
    targets = inter[NEXT_ITEMS].flatten() if NEXT_ITEMS in inter else inter[dataset.iid_field]
    counts = torch.bincount(targets, minlength=dataset.item_num)
    counts[0] = 0  # NEXT_ITEMS' "no pair here"
    return counts


def sequences_per_batch(config, dataset) -> int:
    """Rows per training batch: ``train_batch_size``, or with ``train_batch_pairs`` on per-position
    rows as many sequences as hold ``train_batch_size`` pairs on average."""
    batch_size = config["train_batch_size"]
    if NEXT_ITEMS not in dataset.inter_feat or not config["train_batch_pairs"]:
        return batch_size
    return max(1, round(batch_size * len(dataset) / max(training_pairs(dataset), 1)))


def per_position_loader_when_asked(get_dataloader: Callable, config, phase: str):
    """``train_per_position: True``: the train loader reads :func:`per_position_rows` of the
    prefix rows. data_preparation builds the samplers from the prefix rows before, so evaluation
    is unchanged."""
    loader = get_dataloader(config, phase)
    if phase != "train" or not config["train_per_position"]:
        return loader
    if config["model"] != "LLMEMF" or loader is not TrainDataLoader:
        raise ValueError(
            f"train_per_position is an LLMEMF option; {config['model']} trains on prefix rows"
        )
    return PerPositionTrainDataLoader
