"""Per-position training (training_data.py): the prefix rows' pairs, encoded once per sequence."""

from __future__ import annotations

import pytest
import torch
from conftest import SAMPLED_5
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_llmemf import LLMEMF
from recbole_llmemf.data.training_data import NEXT_ITEMS


def prepare(tiny_dataset, model="LLMEMF", **overrides):
    config_dict = {**tiny_dataset.config, **overrides}
    config = Config(model=model, dataset=tiny_dataset.name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    return config, data_preparation(config, create_dataset(config))


def prefix_pairs(inter) -> list[tuple]:
    """(user, history, target) of every prefix row."""
    return sorted(
        (user, tuple(seq[:n]), target)
        for user, seq, n, target in zip(
            inter["user_id"].tolist(),
            inter["item_id_list"].tolist(),
            inter["item_length"].tolist(),
            inter["item_id"].tolist(),
        )
    )


def position_pairs(inter) -> list[tuple]:
    """(user, history, target) of every position that carries a target."""
    return sorted(
        (user, tuple(seq[: t + 1]), target)
        for user, seq, targets in zip(
            inter["user_id"].tolist(), inter["item_id_list"].tolist(), inter[NEXT_ITEMS].tolist()
        )
        for t, target in enumerate(targets)
        if target
    )


def both_train_loaders(tiny_dataset, max_length: int):
    """The config and LLMEMF's train loaders over prefix rows and over per-position rows."""
    config, (prefix, _, _) = prepare(
        tiny_dataset, train_per_position=False, MAX_ITEM_LIST_LENGTH=max_length
    )
    _, (per_position, _, _) = prepare(
        tiny_dataset, train_per_position=True, MAX_ITEM_LIST_LENGTH=max_length
    )
    return config, prefix, per_position


# 8: every training history fits (one sequence per user); 3: RecBole slides a window
@pytest.mark.parametrize("max_length", [8, 3])
def test_per_position_rows_hold_exactly_the_prefix_rows_pairs(tiny_dataset, max_length):
    _, prefix, per_position = both_train_loaders(tiny_dataset, max_length)
    rows, sequences = prefix.dataset.inter_feat, per_position.dataset.inter_feat
    assert NEXT_ITEMS not in rows
    assert position_pairs(sequences) == prefix_pairs(rows)
    n_users = len(set(rows["user_id"].tolist()))
    pairs_per_row = (sequences[NEXT_ITEMS] > 0).sum(1)
    if max_length == 8:
        assert len(sequences) == n_users  # one sequence per user
    else:  # a slid window keeps its own row, with its target at the last position only
        slid = pairs_per_row == 1
        assert slid.any() and (sequences["item_length"][slid] == max_length).all()
    assert len(sequences) < len(rows)
    # train_batch_pairs: a batch holds train_batch_size pairs on average, as a prefix-row batch
    assert abs(len(per_position) - len(prefix)) <= 1


@pytest.mark.parametrize("max_length", [8, 3])
def test_per_position_loss_is_the_mean_of_the_prefix_rows_losses(tiny_dataset, max_length):
    """Dropout off: one pass over each sequence gives the mean loss of the old prefix-row path."""
    config, prefix, per_position = both_train_loaders(tiny_dataset, max_length)
    model = LLMEMF(config, prefix.dataset)
    model.eval()
    rows = prefix.dataset.inter_feat
    per_row = torch.stack(
        [torch.stack(model.calculate_loss(rows[[i]])) for i in range(len(rows))]
    )  # [N 3], the old path, one prefix row at a time
    at_once = torch.stack(model.calculate_loss(per_position.dataset.inter_feat))
    torch.testing.assert_close(at_once, per_row.mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("protocol", ["full", "sampled999"])
def test_evaluation_data_and_samplers_are_unchanged(tiny_dataset, protocol):
    extra = SAMPLED_5 if protocol == "sampled999" else {}
    _, (_, *prefix_eval) = prepare(tiny_dataset, train_per_position=False, **extra)
    _, (_, *per_position_eval) = prepare(tiny_dataset, train_per_position=True, **extra)
    for old, new in zip(prefix_eval, per_position_eval):
        assert set(old.dataset.inter_feat.columns) == set(new.dataset.inter_feat.columns)
        for field in old.dataset.inter_feat.columns:
            assert torch.equal(old.dataset.inter_feat[field], new.dataset.inter_feat[field])
        used_old, used_new = (getattr(loader._sampler, "used_ids", None) for loader in (old, new))
        if protocol == "sampled999":  # the samplers exclude each user's items, read from all rows
            assert [set(ids) for ids in used_old] == [set(ids) for ids in used_new]
        for old_batch, new_batch in zip(old, new, strict=True):  # sampled: targets and negatives
            assert torch.equal(old_batch[0]["item_id"], new_batch[0]["item_id"])


def test_batches_of_sequences_when_asked(tiny_dataset):
    config, (loader, _, _) = prepare(tiny_dataset, train_batch_pairs=False)
    assert len(next(iter(loader))) == config["train_batch_size"]


def test_per_position_training_is_llmemfs_option_only(tiny_dataset):
    with pytest.raises(ValueError, match="train_per_position is an LLMEMF option"):
        prepare(tiny_dataset, model="SASRec", train_per_position=True)
