"""LLMEMF's content profile score (``content_profile_weight``): ContentCosine's frozen-space cosine
between a candidate and the history's mean vector, added to the fused score with a learned weight."""

from __future__ import annotations

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_trainer, init_seed

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
    assert model.content_profile is None
    assert not any("profile" in name for name in model.state_dict())
    assert model.content_profiles(batch["item_id_list"], batch["item_length"] - 1) == []


def test_scores_add_the_weighted_content_cosine_of_the_whole_history(tiny_dataset):
    """By hand: on top of the paper's scores, ``w_m`` times ContentCosine's score per modality."""
    model, batch = build(tiny_dataset, content_profile_weight=1.0)
    paper, _ = build(tiny_dataset)
    paper.load_state_dict(model.state_dict(), strict=False)
    cosine, _ = build(tiny_dataset, ContentCosine, use_image=False)  # the text cosine alone
    with torch.no_grad():
        model.content_profile.weight["image"].fill_(0.0)
        model.content_profile.weight["text"].fill_(2.5)
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

    # evaluation scales the profile score per target domain
    model.content_profile.scale.copy_(torch.tensor([0.0, 3.0]))
    with torch.no_grad():
        scaled = model.full_sort_predict(batch)
        torch.testing.assert_close(model.predict(batch), scaled[rows, items])
    scale = torch.tensor([0.0, 3.0])[model.item_domain[items]].unsqueeze(1)
    torch.testing.assert_close(scaled[in_domain], (plain + scale * 2.5 * text_cosine)[in_domain])


def test_validation_chooses_each_domains_best_scale(tiny_dataset):
    """Checked against an evaluation at every scale, domain by domain."""
    scales = [0.0, 0.5, 4.0, 50.0]
    options = {"content_profile_weight": 1.0, "content_profile_scales": scales}
    config = Config(
        model="LLMEMF", dataset=tiny_dataset.name, config_dict={**tiny_dataset.config, **options}
    )
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    model = LLMEMF(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    valid_score, valid_result = trainer._valid_epoch(valid_data)
    chosen = model.content_profile.scale.tolist()
    by_scale = {}
    for scale in scales:
        model.content_profile.scale.fill_(scale)
        by_scale[scale] = trainer.evaluate(valid_data, load_best_model=False)
    for domain, name in enumerate(model.domain_names):
        values = [by_scale[scale][f"{name}/fullmrr"] for scale in scales]
        assert values[scales.index(chosen[domain])] == max(values)
        assert valid_result[f"{name}/fullmrr"] == max(values)
    assert len({tuple(r.values()) for r in by_scale.values()}) > 1, "the scale changes the ranks"


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
        assert model.content_profile.weight[modality].grad.abs() > 0
