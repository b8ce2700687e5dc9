"""ContentCosine, the training-free content baseline: its scores by hand, and one run through
RecBole's pipeline with no training pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.quick_start import run_recbole
from recbole.utils import get_trainer, init_seed

from recbole_llmemf import ContentCosine
from recbole_llmemf.data.dataset import load_item_matrix
from recbole_llmemf.trainer.content_cosine_trainer import ContentCosineTrainer


def built(tiny_dataset, **options):
    config = Config(
        model="ContentCosine",
        dataset=tiny_dataset.name,
        config_dict={**tiny_dataset.config, **options},
    )
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    return ContentCosine(config, train_data._dataset), train_data, test_data


@pytest.mark.parametrize("history", ["all", "domain"])
def test_scores_are_the_cosine_with_the_mean_vector_of_the_history(tiny_dataset, history):
    """By hand; with ``content_profile_history: domain``, of the history's items of the
    target's domain, and of the whole history where it has none with a vector."""
    model, train_data, test_data = built(tiny_dataset, content_profile_history=history)
    dataset = train_data._dataset
    domain_of = dataset.item_feat["domain"]  # token ids of the domain names, padding 0
    batch = next(iter(test_data))[0]
    scores = model.full_sort_predict(batch)
    expected = torch.zeros_like(scores)
    fell_back = kept_fewer = 0
    for modality in ("image", "text"):
        matrix, has_vector = load_item_matrix(dataset, modality)
        for row, (history_items, length) in enumerate(
            zip(batch["item_id_list"], batch["item_length"])
        ):
            items = [i for i in history_items[:length].tolist() if has_vector[i]]
            target_domain = domain_of[batch["item_id"][row]]
            in_domain = [i for i in items if domain_of[i] == target_domain]
            if history == "domain" and in_domain:
                kept_fewer += len(in_domain) < len(items)
                items = in_domain
            fell_back += history == "domain" and bool(items) and not in_domain
            if not items:
                continue
            profile = F.normalize(matrix[items], dim=-1).mean(0)
            for item in torch.nonzero(has_vector).flatten().tolist():
                expected[row, item] += F.cosine_similarity(profile, matrix[item], dim=0)
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)
    items = batch["item_id"]
    rows = torch.arange(len(items))
    torch.testing.assert_close(model.predict(batch), scores[rows, items])
    assert not any(p.requires_grad and p.abs().sum() > 0 for p in model.parameters())
    if history == "domain":  # both cases occur in the batch
        assert kept_fewer > 0 and fell_back > 0


def test_the_history_is_all_or_domain(tiny_dataset):
    with pytest.raises(ValueError, match="content_profile_history"):
        built(tiny_dataset, content_profile_history="last")


def test_one_modality_and_none(tiny_dataset):
    model, _, _ = built(tiny_dataset, use_image=False)
    assert model.modalities == ["text"]
    with pytest.raises(ValueError, match="use_image or use_text"):
        built(tiny_dataset, use_image=False, use_text=False)


def test_runs_through_recbole_without_a_training_pass(tiny_dataset):
    config = Config(model="ContentCosine", dataset="tiny", config_dict=tiny_dataset.config)
    assert issubclass(get_trainer(config["MODEL_TYPE"], "ContentCosine"), ContentCosineTrainer)
    result = run_recbole(model="ContentCosine", dataset="tiny", config_dict=tiny_dataset.config)
    assert result["best_valid_result"]["fullmrr"] > 0
    assert 0 < result["test_result"]["fullmrr"] <= 1
