"""LLMEMF is found through RecBole's own entry points; compatibility fixes hold."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.quick_start import run_recbole
from recbole.utils import get_model, get_trainer

from llmemf_cli.run_recbole import main as run_recbole_main
from recbole_llmemf import LLMEMF, register
from recbole_llmemf.trainer.domain_aware import DomainAwareEvaluation
from recbole_llmemf.utils import compat


def test_get_model_finds_llmemf_and_registering_twice_is_harmless():
    register()
    assert get_model("LLMEMF") is LLMEMF
    assert get_model("SASRec").__name__ == "SASRec"


def test_config_applies_our_model_yaml_without_being_asked():
    config = Config(model="LLMEMF", dataset="any")
    assert config["image_weight"] == 0.3 and config["text_weight"] == 0.1
    assert config["train_neg_sample_args"]["distribution"] == "none"  # full cross-entropy
    assert config["hidden_size"] == 256
    overridden = Config(model="LLMEMF", dataset="any", config_dict={"image_weight": 0.5})
    assert overridden["image_weight"] == 0.5


def test_unknown_model_names_the_model_and_known_ones():
    for lookup in (lambda: get_model("LLMEM"), lambda: Config(model="LLMEM", dataset="any")):
        with pytest.raises(ValueError) as error:
            lookup()
        message = str(error.value)
        assert "Unknown model 'LLMEM'" in message and "Did you mean LLMEMF" in message
        assert "SASRec" in message and "lightgbm" not in message


def test_trainers_are_domain_aware():
    trainer = get_trainer(LLMEMF.type, "LLMEMF")
    assert issubclass(trainer, DomainAwareEvaluation)


def test_fresh_process_importing_only_the_package():
    code = (
        "import recbole_llmemf\n"
        "from recbole.utils import get_model\n"
        "from recbole.config import Config\n"
        "print(get_model('LLMEMF').__module__, Config(model='LLMEMF', dataset='d')['image_weight'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["recbole_llmemf.model.llmemf", "0.3"]


def test_run_recbole_and_console_command_train_llmemf(tiny_dataset, capsys):
    result = run_recbole(
        model="LLMEMF", dataset="tiny", config_dict=tiny_dataset.config, saved=False
    )
    assert 0 < result["test_result"]["fullmrr"] <= 1
    assert (
        run_recbole_main(
            [
                "--model=LLMEMF",
                "--dataset=tiny",
                f"--data_path={tiny_dataset.data_path}",
                "--epochs=1",
                "--hidden_size=16",
                "--inner_size=16",
                "--state=WARNING",
                "--show_progress=False",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "Movie" in table and "Book" in table and "fullmrr" in table


def test_console_command_rejects_unknown_model(capsys):
    assert run_recbole_main(["--model=NoSuchModel", "--dataset=tiny"]) == 2
    assert "unknown model 'NoSuchModel'" in capsys.readouterr().err


def test_numpy_aliases_restored_where_missing_and_removed_on_undo(monkeypatch):
    """numpy 2 has no np.float_ or np.unicode_: removed here, as there, they come back."""
    for name in ("float_", "unicode_"):
        monkeypatch.delattr(np, name)
    undo = compat.restore_numpy_aliases()
    assert np.float_ is np.float64 and np.unicode_ is np.str_
    undo()
    assert not hasattr(np, "float_") and not hasattr(np, "unicode_")


@pytest.mark.parametrize("use_gpu", [False, True])
def test_use_gpu_decides_the_device_when_cuda_is_visible(use_gpu, tiny_dataset, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # Config rewrites it; restored afterwards
    config_dict = {**tiny_dataset.config, "use_gpu": use_gpu}
    config = Config(model="LLMEMF", dataset=tiny_dataset.name, config_dict=config_dict)
    assert config["device"].type == ("cuda" if use_gpu else "cpu")


def test_broken_ray_is_stubbed_reports_nothing_and_fails_only_when_used(monkeypatch):
    for name in [n for n in sys.modules if n == "ray" or n.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    compat.stub_broken_ray()
    from ray import tune

    assert tune.report(**{"Movie/fullmrr": 0.5}) is None  # as outside a Tune session
    with pytest.raises(ImportError, match="ray.tune could not be imported"):
        tune.run(lambda config: None)


def test_demo_command_generates_data_trains_and_prints_domains(tmp_path, capsys):
    from llmemf_cli.demo import main as demo_main

    assert demo_main(["--users=60", "--epochs=1", f"--data-path={tmp_path / 'data'}"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "data" / "llmemf_demo" / "llmemf_demo.yaml").is_file()
    rows = {
        line.split()[0]: line.split()[1:]
        for line in out.splitlines()
        if line[:5] in ("Movie", "Book ", "all  ")
    }
    assert set(rows) == {"Movie", "Book", "all"}
    for columns in zip(rows["all"], rows["Movie"], rows["Book"]):  # all: a weighted mean of both
        all_cases, movie, book = map(float, columns)
        assert min(movie, book) - 1e-4 <= all_cases <= max(movie, book) + 1e-4
