"""RecBole's own entry points work with the plugin in any import order: RecBole's quick start
imported before the plugin, its ``objective_function`` and its ``HyperTuning`` grid search."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import yaml

RECBOLE_FIRST = """
import json, sys
from recbole.quick_start import run_recbole  # first, as a script of a RecBole project starts

import recbole_llmemf  # noqa: F401  registers LLMEMF

config = json.loads(sys.argv[1])
sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from argv
result = run_recbole(model="LLMEMF", dataset="tiny", config_dict=config, saved=False)
print(json.dumps(result["test_result"]))
"""


def test_recbole_quick_start_imported_before_the_plugin_trains_llmemf(tiny_dataset, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", RECBOLE_FIRST, json.dumps(tiny_dataset.config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert 0 < result["fullmrr"] <= 1
    assert {"Movie/fullmrr", "Book/fullmrr"} <= set(result)  # the plugin's evaluation ran


@pytest.fixture
def restore_logging():
    """RecBole's objective_function removes the root logger's handlers and sets its level."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_objective_function_runs_llmemf_and_returns_plain_floats(tiny_dataset, restore_logging):
    from recbole.quick_start import objective_function

    config = {**tiny_dataset.config, "model": "LLMEMF", "dataset": "tiny"}
    result = objective_function(config, saved=False)  # ends with ray's tune.report(**test_result)
    assert result["model"] == "LLMEMF"
    assert 0 < result["test_result"]["Movie/fullmrr"] <= 1
    assert all(type(value) is float for value in result["test_result"].values())


def test_hyper_tuning_grid_searches_learning_rate_and_regularisation(
    tiny_dataset, tmp_path, restore_logging
):
    from recbole.quick_start import objective_function
    from recbole.trainer import HyperTuning

    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(
        yaml.safe_dump({**tiny_dataset.config, "model": "LLMEMF", "dataset": "tiny"}),
        encoding="utf-8",
    )
    grid = {"learning_rate": [0.01, 0.001], "weight_decay": [0.0, 0.0001]}
    tuning = HyperTuning(
        objective_function,
        params_dict={"choice": grid},
        fixed_config_file_list=[str(fixed)],
        algo="exhaustive",
    )
    tuning.run()
    tried = {(float(p["learning_rate"]), float(p["weight_decay"])) for p in _tried(tuning)}
    assert tried == {(lr, wd) for lr in grid["learning_rate"] for wd in grid["weight_decay"]}
    assert tuning.best_params["learning_rate"] in grid["learning_rate"]
    assert all(0 < r["test_result"]["fullmrr"] <= 1 for r in tuning.params2result.values())


def _tried(tuning) -> list[dict]:
    """HyperTuning keys its results by "name:value, name:value" strings."""
    return [dict(pair.split(":") for pair in key.split(", ")) for key in tuning.params2result]
