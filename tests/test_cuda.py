"""LLMEMF on a CUDA device: the same scores as on CPU, and training under mixed precision.

Skipped on machines without a GPU (CI has none); run them where one is present.
"""

from __future__ import annotations

import math

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.quick_start import run_recbole

from recbole_llmemf import LLMEMF

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_full_sort_scores_on_cuda_equal_cpu_scores(tiny_dataset):
    config = Config(model="LLMEMF", dataset=tiny_dataset.name, config_dict=tiny_dataset.config)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model = LLMEMF(config, train_data._dataset).eval()
    batch = next(iter(train_data))
    with torch.no_grad():
        on_cpu = model.full_sort_predict(batch)
        model.to("cuda")  # the evaluation cache must follow the weights to the device
        on_cuda = model.full_sort_predict(batch.to("cuda")).cpu()
    assert torch.equal(torch.isinf(on_cpu), torch.isinf(on_cuda))
    finite = torch.isfinite(on_cpu)
    torch.testing.assert_close(on_cuda[finite], on_cpu[finite], rtol=1e-4, atol=1e-4)


def test_one_epoch_with_mixed_precision_on_cuda(tiny_dataset):
    config = {**tiny_dataset.config, "use_gpu": True, "enable_amp": True, "enable_scaler": True}
    result = run_recbole(model="LLMEMF", dataset=tiny_dataset.name, config_dict=config)
    assert math.isfinite(result["best_valid_score"])
    assert 0.0 < result["test_result"]["fullmrr"] <= 1.0
