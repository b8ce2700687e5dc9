"""Issue 13: a fresh process can reload and evaluate, checkpoints load without trusting pickles
and without touching ``torch.load``, and two runs at once neither crash nor swap checkpoints."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from conftest import SAMPLED_5
from recbole.config import Config
from recbole.quick_start import load_data_and_model, run_recbole
from recbole.utils import get_trainer

from recbole_llmemf.data.fileformat.atomic import atomic_write
from recbole_llmemf.utils import compat
from recbole_llmemf.utils.checkpoint import load_checkpoint
from recbole_llmemf.utils.errors import UnsafeCheckpointError

ORIGINAL_TORCH_LOAD = torch.serialization.load  # what torch.load is when nobody replaced it


def python(code: str, *args: str, cwd: Path) -> subprocess.Popen:
    """A fresh interpreter: nothing imported, no Config built, argv and cwd of its own."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return out.strip().splitlines()[-1]


TRAIN = """
    import json, sys
    import recbole_llmemf
    import recbole.trainer.trainer as trainer
    from recbole.quick_start import run_recbole

    if len(sys.argv) > 3:  # both runs start "in the same second", as RecBole names checkpoints
        trainer.get_local_time = lambda: sys.argv[3]
    config = json.loads(sys.argv[2])
    result = run_recbole(model=sys.argv[1], dataset="tiny", config_dict=config, saved=True)
    print(json.dumps(result["test_result"]))
"""


# ----------------------------------------------------------------------------- 1. np.float


def test_fresh_process_reloads_a_checkpoint_and_evaluates(tiny_dataset, tmp_path):
    """NDCG uses ``np.float``, which only a built Config used to restore: load_data_and_model then
    evaluate in a fresh process failed with "module 'numpy' has no attribute 'float'"."""
    trained = json.loads(finish(python(TRAIN, "LLMEMF", json.dumps(tiny_dataset.config),
                                       cwd=tmp_path)))  # fmt: skip
    (checkpoint,) = (tmp_path / "saved").glob("LLMEMF-*.pth")
    evaluate = """
        import json, sys
        import recbole_llmemf
        from recbole.quick_start import load_data_and_model
        from recbole.utils import get_trainer

        config, model, _, _, _, test_data = load_data_and_model(sys.argv[1])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        print(json.dumps(trainer.evaluate(test_data, load_best_model=False)))
    """
    reloaded = json.loads(finish(python(evaluate, str(checkpoint), cwd=tmp_path)))
    assert "ndcg@10" in reloaded and "Book/ndcg@10" in reloaded
    assert reloaded == pytest.approx(trained)


def test_numpy_aliases_are_those_config_sets():
    import numpy as np

    compat.restore_numpy_aliases()
    assert np.float is np.float64 and np.int is np.int_ and np.unicode is np.str_
    Config(model="SASRec", dataset="any")  # RecBole's own compatibility_settings: nothing changes
    assert np.float is np.float64 and np.int is np.int_ and np.unicode is np.str_


# ----------------------------------------------------------------------------- 2. safe loading


def _write_marker(path: str) -> None:
    Path(path).write_text("payload ran")


class Payload:
    """Unpickling this runs ``_write_marker``: what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return _write_marker, (self.marker,)


class ModelPayload:
    """Unpickling this calls a model's ``__init__`` with what the pickle chooses."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        from recbole.model.sequential_recommender import SASRec

        return SASRec, (None, None)


class ConfigPayload:
    """Unpickling this calls ``Config(config_dict=...)``, whose __init__ ``eval``s the strings."""

    def __init__(self, marker: Path):
        self.code = f"open({str(marker)!r}, 'w').write('payload ran')"

    def __reduce__(self):
        return Config, ("SASRec", "any", None, {"key": self.code})


@pytest.fixture
def saved_checkpoint(tiny_dataset, tmp_path) -> Path:
    config = {**tiny_dataset.config, "seed": 3}
    run_recbole(model="SASRec", dataset="tiny", config_dict=config, saved=True)
    return next((tmp_path / "saved").glob("SASRec-*.pth"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")  # torch.load of RecBole's file
def test_recbole_checkpoint_loads_with_its_own_allow_list(saved_checkpoint, tmp_path):
    checkpoint = load_checkpoint(saved_checkpoint)
    assert type(checkpoint["config"]) is Config and checkpoint["config"]["seed"] == 3
    assert checkpoint["config"]["model"] == "SASRec"
    assert checkpoint["config"].model_class.__name__ == "SASRec"
    assert isinstance(checkpoint["state_dict"]["item_embedding.weight"], torch.Tensor)
    config, model, _, _, _, _ = load_data_and_model(str(saved_checkpoint))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.resume_checkpoint(saved_checkpoint)  # RecBole's third torch.load (trainer.py L323)
    assert trainer.start_epoch == checkpoint["epoch"] + 1
    assert torch.load is ORIGINAL_TORCH_LOAD
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(saved_checkpoint)  # everyone else keeps torch's weights_only default

    for payload in (Payload, ConfigPayload, ModelPayload):
        marker = tmp_path / f"{payload.__name__}.ran"
        path = tmp_path / f"{payload.__name__}.pth"
        torch.save({"config": payload(marker)}, path)
        with pytest.raises(UnsafeCheckpointError):
            load_checkpoint(path)
        assert not marker.exists()


class GatedFile(io.BytesIO):
    """A checkpoint that, once its loading starts, waits until the test lets it go on."""

    def __init__(self, path: Path, started: threading.Event, go_on: threading.Event):
        super().__init__(path.read_bytes())
        self.started, self.go_on = started, go_on

    def _gate(self) -> None:
        if not self.started.is_set():
            self.started.set()
            assert self.go_on.wait(60)

    def read(self, *args):
        self._gate()
        return super().read(*args)

    def readinto(self, buffer):
        self._gate()
        return super().readinto(buffer)


def _in_thread(function, *args) -> tuple[threading.Thread, list]:
    outcome: list = []

    def target():
        try:
            outcome.append(function(*args))
        except BaseException as error:  # reported by the test, not lost in the thread
            outcome.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_malicious_pickle_is_refused_while_a_checkpoint_loads_and_after(saved_checkpoint, tmp_path):
    marker = tmp_path / "payload.ran"
    malicious = tmp_path / "malicious.pth"
    torch.save({"state_dict": Payload(marker)}, malicious)

    started, go_on = threading.Event(), threading.Event()
    gated = GatedFile(saved_checkpoint, started, go_on)
    thread, outcome = _in_thread(load_data_and_model, gated)
    assert started.wait(120), "the checkpoint load never started"
    try:  # the checkpoint is being loaded in the other thread right now
        with pytest.raises(pickle.UnpicklingError):
            torch.load(malicious)
    finally:
        go_on.set()
        thread.join(120)
    assert not marker.exists()
    assert isinstance(outcome[0], tuple), outcome[0]  # and that load finished

    threads = [_in_thread(load_data_and_model, str(saved_checkpoint)) for _ in range(3)]
    for thread, outcome in threads:
        thread.join(300)
        assert isinstance(outcome[0], tuple), outcome[0]
    assert torch.load is ORIGINAL_TORCH_LOAD
    with pytest.raises(pickle.UnpicklingError):
        torch.load(malicious)
    assert not marker.exists()


# ----------------------------------------------------------------------------- 3. two runs at once


def test_two_writers_of_one_file_both_succeed(tmp_path):
    """Two runs drawing the same candidates file at once: each writes a temporary file of its own."""
    path = tmp_path / "tiny.test-candidates-5-seed2026.tsv"
    both_writing = threading.Barrier(2, timeout=30)

    def write(text: str) -> None:
        with atomic_write(path) as file:
            file.write(text)
            both_writing.wait()  # both temporary files are open and written at this point

    runs = [_in_thread(write, text) for text in ("first\n" * 1000, "second\n" * 1000)]
    for thread, outcome in runs:
        thread.join(60)
        assert outcome == [None], outcome
    assert path.read_text() in ("first\n" * 1000, "second\n" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file left"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # as a plain open() makes it


def test_two_runs_at_once_each_test_their_own_checkpoint(tiny_dataset, tmp_path):
    """Two runs started in the same second on one fresh dataset: both draw the candidates, both
    finish, each checkpoint holds its own run's model, and each result equals the run alone."""
    same_second = "Dec-01-2026_12-00-00"
    configs = {seed: {**tiny_dataset.config, **SAMPLED_5, "seed": seed} for seed in (1, 2)}
    runs = {
        seed: python(TRAIN, "SASRec", json.dumps(config), same_second, cwd=tmp_path)
        for seed, config in configs.items()
    }
    results = {seed: json.loads(finish(run)) for seed, run in runs.items()}
    assert results[1] != results[2], "different seeds, different models"

    checkpoints = sorted((tmp_path / "saved").glob(f"SASRec-{same_second}*.pth"))
    assert len(checkpoints) == 2, checkpoints
    for checkpoint in checkpoints:
        config, model, _, _, _, test_data = load_data_and_model(str(checkpoint))
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        reloaded = trainer.evaluate(test_data, load_best_model=False)
        assert reloaded == pytest.approx(results[config["seed"]])

    for seed, config in configs.items():
        alone = run_recbole(model="SASRec", dataset="tiny", config_dict=config, saved=False)
        assert alone["test_result"] == pytest.approx(results[seed])


def test_recbole_keeps_its_checkpoint_name_without_our_options():
    """Importing the plugin changes nothing for a config without domain_field or protocol."""
    recbole_name = r"saved/SASRec-\w{3}-\d\d-\d{4}_\d\d-\d\d-\d\d"  # trainer.py L132
    for config_dict, name in [
        ({}, recbole_name + r"\.pth"),
        ({"checkpoint_per_run": True}, recbole_name + r"-\d+-[0-9a-f]{8}\.pth"),
        ({"protocol": "full", "checkpoint_per_run": False}, recbole_name + r"\.pth"),
    ]:
        config = Config(
            model="SASRec", dataset="ml-100k", config_dict={"use_gpu": False, **config_dict}
        )
        trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, torch.nn.Linear(1, 1))
        assert re.fullmatch(name, trainer.saved_model_file), (config_dict, trainer.saved_model_file)
