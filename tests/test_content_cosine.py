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


def test_scores_are_the_cosine_with_the_mean_vector_of_the_history(tiny_dataset):
    model, train_data, test_data = built(tiny_dataset)
    batch = next(iter(test_data))[0]
    scores = model.full_sort_predict(batch)
    expected = torch.zeros_like(scores)
    for modality in ("image", "text"):
        matrix, has_vector = load_item_matrix(train_data._dataset, modality)
        for row, (history, length) in enumerate(zip(batch["item_id_list"], batch["item_length"])):
            items = [i for i in history[:length].tolist() if has_vector[i]]
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
