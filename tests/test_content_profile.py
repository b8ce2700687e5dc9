"""LLMEMF's content profile score (``content_profile_weight``): ContentCosine's frozen-space cosine
between a candidate and the history's mean vector, added to the fused score with a learned weight."""

from __future__ import annotations

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_llmemf import LLMEMF
from recbole_llmemf.model.content_cosine import ContentCosine


def build(tiny_dataset, model_class=LLMEMF, **options):
    """(model, test batch) on the tiny data with ``options``."""
    config = Config(
        model=model_class.__name__,
        dataset=tiny_dataset.name,
        config_dict={**tiny_dataset.config, **options},
    )
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    batch = next(iter(test_data))[0]
    return model_class(config, train_data._dataset).eval(), batch


def test_off_by_default_adds_no_parameter_and_no_score(tiny_dataset):
    model, batch = build(tiny_dataset)
    assert len(model.profile_weight) == 0
    assert not any("profile" in name for name in model.state_dict())
    assert model.whole_history_profiles(batch) == []


def test_scores_add_the_weighted_content_cosine_of_the_whole_history(tiny_dataset):
    """By hand: on top of the paper's scores, ``w_m`` times ContentCosine's score per modality."""
    model, batch = build(tiny_dataset, content_profile_weight=1.0)
    paper, _ = build(tiny_dataset)
    paper.load_state_dict(model.state_dict(), strict=False)
    cosine, _ = build(tiny_dataset, ContentCosine, use_image=False)  # the text cosine alone
    with torch.no_grad():
        model.profile_weight["image"].fill_(0.0)
        model.profile_weight["text"].fill_(2.5)
        scores, plain = model.full_sort_predict(batch), paper.full_sort_predict(batch)
        text_cosine = cosine.full_sort_predict(batch)
    in_domain = torch.isfinite(plain)
    assert torch.equal(in_domain, torch.isfinite(scores))
    torch.testing.assert_close(scores[in_domain], (plain + 2.5 * text_cosine)[in_domain])
    assert text_cosine[in_domain].abs().sum() > 0, "the tiny data's histories have text vectors"
    items = batch["item_id"]
    rows = torch.arange(len(items))
    with torch.no_grad():
        torch.testing.assert_close(model.predict(batch), scores[rows, items])


def test_training_learns_the_profile_weights(tiny_dataset):
    model, _ = build(tiny_dataset, content_profile_weight=0.5)
    config = Config(
        model="LLMEMF",
        dataset=tiny_dataset.name,
        config_dict={**tiny_dataset.config, "content_profile_weight": 0.5},
    )
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model.train()
    loss = sum(model.calculate_loss(next(iter(train_data))))
    loss.backward()
    for modality in ("image", "text"):
        assert model.profile_weight[modality].grad.abs() > 0
