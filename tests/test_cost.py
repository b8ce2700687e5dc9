"""Training LLMEMF says its size and epoch length; the first training batches give the epoch time."""

from __future__ import annotations

import logging
import re

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.quick_start import run_recbole

from recbole_llmemf import LLMEMF
from recbole_llmemf.trainer.llmemf_trainer import PROBE_BATCHES, EpochTimer


def test_size_and_epoch_time_are_logged_before_the_epoch_ends(tiny_dataset, caplog):
    caplog.set_level(logging.INFO, logger="recbole_llmemf.trainer.llmemf_trainer")
    config = {**tiny_dataset.config, "train_batch_size": 8}
    run_recbole(model="LLMEMF", dataset="tiny", config_dict=config, saved=False)
    size, timing = [
        r.getMessage() for r in caplog.records if r.name == "recbole_llmemf.trainer.llmemf_trainer"
    ]
    pairs, batches = re.search(
        r"an epoch is ([\d,]+) training pairs in ([\d,]+) batches", size
    ).groups()
    llmemf = Config(model="LLMEMF", dataset="tiny", config_dict=config)
    train_data, _, _ = data_preparation(llmemf, create_dataset(llmemf))
    prefix_rows = create_dataset(
        Config(model="SASRec", dataset="tiny", config_dict=config)
    ).build()[0]
    # the loader's own batches (per-position rows, about 8 pairs each) and the prefix rows' pairs
    assert int(batches) == sum(1 for _ in train_data) > PROBE_BATCHES
    assert int(pairs) == len(prefix_rows)
    assert re.match(
        r"LLMEMF: 0\.\d\dM trainable parameters \(hidden_size 16, inner_size 16, ", size
    )
    assert f"the first {PROBE_BATCHES} training batches took" in timing
    assert f"an epoch of {batches} batches takes about" in timing


def test_the_probe_returns_the_model_losses(tiny_dataset):
    config = Config(
        model="LLMEMF", dataset="tiny", config_dict={**tiny_dataset.config, "train_batch_size": 8}
    )
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model = LLMEMF(config, train_data._dataset).eval()  # eval: no dropout, equal losses
    batch = next(iter(train_data))
    expected = model.calculate_loss(batch)
    probe = EpochTimer(model.calculate_loss, "LLMEMF", n_batches=10)
    for _ in range(PROBE_BATCHES + 2):
        assert [x.item() for x in probe(batch)] == [x.item() for x in expected]
    assert probe.seen == PROBE_BATCHES + 2
    assert "calculate_loss" not in vars(model)  # the model is left as it is
