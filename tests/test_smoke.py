"""One epoch of train + evaluate + checkpoint reload per model, through RecBole's run_recbole."""

from __future__ import annotations

import pytest
from recbole.quick_start import load_data_and_model, run_recbole
from recbole.utils import get_trainer

MODELS = ["LLMEMF", "SASRec", "GRU4Rec", "SRGNN", "BPR", "ItemKNN"]
METRICS = ["fullmrr", "ndcg@5", "ndcg@10", "hit@10"]


@pytest.mark.parametrize("model", MODELS)
def test_one_epoch_then_reload_checkpoint(model, tiny_dataset):
    result = run_recbole(model=model, dataset="tiny", config_dict=tiny_dataset.config, saved=True)
    test_result = result["test_result"]
    for metric in METRICS:  # all cases: between the two domains' means, weighted by their cases
        movie, book = test_result["Movie/" + metric], test_result["Book/" + metric]
        assert min(movie, book) - 1e-4 <= test_result[metric] <= max(movie, book) + 1e-4
    assert test_result["hit@10"] > 0, "some test target is ranked in the top 10 of 18 items"

    checkpoint = next((tiny_dataset.data_path.parent / "saved").glob(f"{model}-*.pth"))
    config, reloaded, _, _, _, test_data = load_data_and_model(str(checkpoint))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, reloaded)
    assert trainer.evaluate(test_data, load_best_model=False) == pytest.approx(test_result)
