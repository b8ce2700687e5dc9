"""Like-for-like CE baselines (train_in_target_domain) and the content-destroying feature control
(shuffled_modalities)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed
from torch import nn

from recbole_llmemf.data.dataset import load_item_matrix
from recbole_llmemf.data.domains import item_domains
from recbole_llmemf.trainer.indomain import TargetDomainCrossEntropy


def trained(tiny_dataset, model_name: str, **extra):
    """One epoch through the (domain-aware) trainer's fit, as run_recbole does."""
    config = Config(model=model_name, dataset="tiny", config_dict={**tiny_dataset.config, **extra})
    init_seed(config["seed"], True)
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = get_model(model_name)(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    trainer.fit(train_data, valid_data, saved=False)
    return model.eval(), train_data


def cross_entropy(model, batch, restrict: torch.Tensor | None) -> torch.Tensor:
    """The CE loss of RecBole's sequential models written out, logits over every item."""
    seq_output = model.forward(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    logits = seq_output @ model.item_embedding.weight.T  # [B n_items]
    if restrict is not None:
        other = restrict[None, :] != restrict[batch[model.ITEM_ID]][:, None]
        logits = logits.masked_fill(other, float("-inf"))
    return nn.functional.cross_entropy(logits, batch[model.ITEM_ID])


@pytest.mark.parametrize("model_name", ["SASRec", "GRU4Rec"])
def test_target_domain_softmax_changes_the_loss_only_when_on(tiny_dataset, model_name):
    model, train_data = trained(tiny_dataset, model_name)
    batch = next(iter(train_data))
    domain, _ = item_domains(train_data._dataset, "domain")
    with torch.no_grad():
        assert type(model.loss_fct) is nn.CrossEntropyLoss
        off = model.calculate_loss(batch)
        torch.testing.assert_close(off, cross_entropy(model, batch, None))

    model, train_data = trained(tiny_dataset, model_name, train_in_target_domain=True)
    with torch.no_grad():
        assert isinstance(model.loss_fct, TargetDomainCrossEntropy)
        on = model.calculate_loss(batch)
        torch.testing.assert_close(on, cross_entropy(model, batch, domain))
        assert on < cross_entropy(model, batch, None), "fewer items in the softmax"


def test_target_domain_softmax_refuses_a_model_without_full_cross_entropy(tiny_dataset):
    with pytest.raises(ValueError, match="BPR has no full cross-entropy loss"):
        trained(tiny_dataset, "BPR", train_in_target_domain=True)


def llmemf_dataset(tiny_dataset, **extra):
    config = Config(model="LLMEMF", dataset="tiny", config_dict={**tiny_dataset.config, **extra})
    return create_dataset(config)


def test_shuffled_modality_keeps_the_missing_pattern_and_moves_every_vector(tiny_dataset):
    plain = llmemf_dataset(tiny_dataset)
    shuffled = llmemf_dataset(tiny_dataset, shuffled_modalities=["text"])
    again = llmemf_dataset(tiny_dataset, shuffled_modalities=["text"])
    other_seed = llmemf_dataset(tiny_dataset, shuffled_modalities=["text"], seed=7)

    text, has_text = load_item_matrix(plain, "text")
    moved, still_has_text = load_item_matrix(shuffled, "text")
    assert not has_text.all() and torch.equal(still_has_text, has_text), "same items have text"
    rows = lambda m: sorted(map(tuple, m[has_text].tolist()))  # noqa: E731
    assert rows(moved) == rows(text), "the same vectors, each given to another item"
    assert (moved[has_text] != text[has_text]).any(dim=1).float().mean() > 0.5
    torch.testing.assert_close(load_item_matrix(again, "text")[0], moved)  # seeded
    assert not torch.equal(load_item_matrix(other_seed, "text")[0], moved)
    image = [load_item_matrix(d, "image") for d in (plain, shuffled)]
    assert all(torch.equal(a, b) for a, b in zip(*image)), "other modalities untouched"
    assert np.isfinite(moved.numpy()).all()
