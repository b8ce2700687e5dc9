"""A checkpoint's Config is not trusted: loading one builds the model whose weights it holds and
nothing else. One test per payload of the issue, each crafted from a real LLMEMF checkpoint as an
attacker would (load it, change its config, ``torch.save`` it)."""

from __future__ import annotations

import io
import os
import pickle
import re
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import recbole
import torch
from conftest import TINY_CONFIG, TINY_SPEC
from recbole.quick_start import load_data_and_model, run_recbole
from recbole.utils import ModelType

from llmemf_cli import recommend as recommend_cli
from recbole_llmemf.dataset_tools.synthetic import generate
from recbole_llmemf.utils import checkpoint_safety
from recbole_llmemf.utils.checkpoint import _checkpoint_pickle, load_checkpoint
from recbole_llmemf.utils.errors import UnsafeCheckpointError


@pytest.fixture(scope="module")
def llmemf_checkpoint(tmp_path_factory) -> Path:
    """One epoch of LLMEMF on the tiny dataset, trained once for this module's tests."""
    folder = tmp_path_factory.mktemp("llmemf_checkpoint")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # RecBole writes log/ and saved/ here
        patch.setattr(sys, "argv", ["pytest"])
        generate(TINY_SPEC, folder / "dataset")
        config = {**TINY_CONFIG, "data_path": str(folder / "dataset")}
        run_recbole(model="LLMEMF", dataset="tiny", config_dict=config, saved=True)
    (checkpoint,) = (folder / "saved").glob("LLMEMF-*.pth")
    return checkpoint


def crafted(checkpoint: Path, path: Path, model_class: type | None = None, **values) -> Path:
    """``checkpoint`` with ``values`` (and ``model_class``) set in its config, saved as ``path``."""
    saved = load_checkpoint(checkpoint)
    for key, value in values.items():
        saved["config"][key] = value
    if model_class is not None:
        saved["config"].model_class = model_class
    torch.save(saved, path)
    return path


def _touch(path: str) -> None:
    Path(path).touch()


class Payload:
    """Unpickling this creates ``marker``: what a pickle planted on disk does."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return _touch, (self.marker,)


def run_recommend(checkpoint: Path, tmp_path: Path, capsys) -> tuple[int, str]:
    """``llmemf-recommend CHECKPOINT --out x.tsv``: exit status and standard error."""
    status = recommend_cli.main(
        [str(checkpoint), "--out", str(tmp_path / "x.tsv"), "--no-progress"]
    )
    return status, capsys.readouterr().err


def assert_refused_in_one_line(status: int, err: str, reason: str) -> None:
    assert status == 1 and "Traceback" not in err
    assert re.search(f"^llmemf-recommend: .*: refused: .*{reason}", err.splitlines()[-1])


# ----------------------------------------------------------------------------- 1. code in `teacher`


@pytest.mark.parametrize("entry", ["llmemf-recommend", "load_data_and_model"])
@pytest.mark.parametrize("saved_class", ["LLMEMF", "KD_DAGFM"])
def test_kd_dagfm_teacher_code_never_runs(llmemf_checkpoint, tmp_path, capsys, entry, saved_class):
    """KD_DAGFM's constructor evals ``config['teacher']`` (kd_dagfm.py L44); the checkpoint holds
    LLMEMF's weights, and says so (refused: the names disagree) or claims KD_DAGFM's class too
    (refused: a model that evals its config is never built from a checkpoint)."""
    from recbole.model.context_aware_recommender import KD_DAGFM

    marker = tmp_path / "teacher.ran"
    evil = crafted(
        llmemf_checkpoint,
        tmp_path / "evil.pth",
        model_class=KD_DAGFM if saved_class == "KD_DAGFM" else None,
        model="KD_DAGFM",
        MODEL_TYPE=ModelType.CONTEXT,
        phase="teacher_training",
        train_per_position=False,  # an LLMEMF option, which the plugin refuses for other models
        teacher=f"(__import__('pathlib').Path({str(marker)!r}).touch(), CrossNet)[1]",
        **{"type": "outer", "t_depth": 3, "depth": 3, "alpha": 0.1, "beta": 921.6},
        **{"t_cin": [200, 200, 200], "warm_up": "", "embedding_size": 16},
    )
    reason = "KD_DAGFM" if saved_class == "KD_DAGFM" else "saved from model class 'LLMEMF'"
    if entry == "llmemf-recommend":
        assert_refused_in_one_line(*run_recommend(evil, tmp_path, capsys), reason)
    else:
        with pytest.raises(UnsafeCheckpointError, match=reason):
            load_data_and_model(str(evil))
    assert not marker.exists()


# ----------------------------------------------------------------------------- 2. pickles on disk


@pytest.mark.parametrize("key", ["dataset_save_path", "dataloaders_save_path", "checkpoint_dir"])
def test_pickles_the_checkpoint_points_at_are_not_read(llmemf_checkpoint, tmp_path, key):
    """RecBole unpickles ``dataset_save_path``, ``dataloaders_save_path`` or, without them, the
    file of its default name in ``checkpoint_dir`` (data/utils.py L61, L122). A checkpoint names
    none of them: it loads, from the atomic files."""
    marker = tmp_path / "pickle.ran"
    planted = tmp_path / "planted"
    planted.mkdir()
    file = planted / ("tiny-LLMEMFDataset.pth" if key == "checkpoint_dir" else "evil.pkl")
    file.write_bytes(pickle.dumps(Payload(marker)))
    value = str(planted if key == "checkpoint_dir" else file)
    evil = crafted(llmemf_checkpoint, tmp_path / "evil.pth", **{key: value})

    config, model, dataset, *_ = load_data_and_model(str(evil))
    assert not marker.exists()
    assert config[key] == checkpoint_safety.safe_values()[key]
    assert config["model"] == "LLMEMF" and dataset.inter_num > 0


# ----------------------------------------------------------------------------- 3. path as model


@pytest.mark.parametrize("model", ["../escaped", "{tmp_path}/escaped", "as a dict"])
def test_model_name_creates_no_directory(llmemf_checkpoint, tmp_path, model):
    """RecBole's init_logger creates ``log/<model>/`` and a log file in it before get_model refuses
    the name; a plain dict as the config would be read the same way."""
    evil = tmp_path / "evil.pth"
    if model == "as a dict":
        saved = load_checkpoint(llmemf_checkpoint)
        saved["config"] = {**saved["config"].final_config_dict, "model": "../escaped"}
        torch.save(saved, evil)
        reason = "config is a Config, not <class 'dict'>"
    else:
        crafted(llmemf_checkpoint, evil, model=model.format(tmp_path=tmp_path))
        reason = "not a known model"
    with pytest.raises(UnsafeCheckpointError, match=re.escape(reason)):
        load_data_and_model(str(evil))
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "log").exists()


# ----------------------------------------------------------------------------- 4. save switches


def test_save_switches_and_checkpoint_dir_write_nothing(llmemf_checkpoint, tmp_path, capsys):
    """``save_dataset`` / ``save_dataloaders`` would write pickles into the checkpoint's
    ``checkpoint_dir``: they are off, and the recommendations are written as for any checkpoint."""
    attacker = tmp_path / "attacker"
    evil = crafted(
        llmemf_checkpoint,
        tmp_path / "evil.pth",
        save_dataset=True,
        save_dataloaders=True,
        checkpoint_dir=str(attacker),
    )
    status, err = run_recommend(evil, tmp_path, capsys)
    assert status == 0, err
    assert not attacker.exists() and not (tmp_path / "saved").exists()
    assert (tmp_path / "x.tsv").read_text().startswith("user_id\trank\titem_id\tscore\n")


# ----------------------------------------------------------------------------- 5. legacy tar


def legacy_tar(path: Path, storages_target: Path) -> Path:
    """torch's legacy .tar checkpoint whose ``storages`` member links to ``storages_target``."""
    members = {"sys_info": pickle.dumps({}), "tensors": pickle.dumps(0)}
    members["pickle"] = pickle.dumps({"epoch": 1})
    with tarfile.open(path, "w:", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("storages")
        link.type, link.linkname = tarfile.SYMTYPE, str(storages_target)
        tar.addfile(link)
    return path


@pytest.mark.parametrize("target", ["file", "fifo"])
def test_legacy_tar_checkpoint_with_a_link_is_refused(tmp_path, target):
    """torch extracts ``storages`` into a temporary folder and opens it: through a symbolic link
    it reads any local file (here one in the stream format it expects, so the load succeeds), and a
    FIFO blocks it until someone writes (here this test, after 20 s)."""
    local = tmp_path / target
    if target == "fifo":
        os.mkfifo(local)
    else:
        local.write_bytes(pickle.dumps(0) + pickle.dumps([]))  # no storages, no views
    evil = legacy_tar(tmp_path / "evil.pth", local)

    outcome: list = []

    def load() -> None:
        try:
            outcome.append(load_checkpoint(str(evil)))
        except Exception as error:  # reported below
            outcome.append(error)

    thread = threading.Thread(target=load)
    thread.start()
    thread.join(20)
    blocked = thread.is_alive()
    if blocked:  # the load opened the FIFO and waits for a writer: let it go on, and fail
        os.close(os.open(local, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(20)
    assert not blocked, "torch.load opened the FIFO the checkpoint links to"
    assert isinstance(outcome[0], UnsafeCheckpointError), outcome[0]
    assert "'storages' is a symbolic link" in str(outcome[0])


def test_legacy_tar_checks_leave_other_files_alone(llmemf_checkpoint, tmp_path):
    """Zip checkpoints and file objects load as before; a file object is read from where it was."""
    checkpoint_safety.refuse_unsafe_tar(llmemf_checkpoint)  # a zip: not a tar file
    data = io.BytesIO(llmemf_checkpoint.read_bytes())
    checkpoint_safety.refuse_unsafe_tar(data)
    assert data.tell() == 0
    assert load_checkpoint(data)["config"]["model"] == "LLMEMF"
    regular = tmp_path / "regular"
    regular.write_bytes(pickle.dumps(0) + pickle.dumps([]))
    with tarfile.open(tmp_path / "plain.tar", "w:") as tar:
        tar.add(regular, arcname="storages")
    checkpoint_safety.refuse_unsafe_tar(tmp_path / "plain.tar")  # regular members only: torch's


# ----------------------------------------------------------------------------- honest checkpoints


def test_an_honest_checkpoint_keeps_its_config_and_loads(llmemf_checkpoint, caplog):
    raw = torch.load(llmemf_checkpoint, pickle_module=_checkpoint_pickle, weights_only=False)
    config = load_checkpoint(llmemf_checkpoint)["config"]
    assert config.final_config_dict == raw["config"].final_config_dict
    assert config.model_class.__name__ == "LLMEMF" and config.dataset == "tiny"
    assert not [r for r in caplog.records if r.name == checkpoint_safety.__name__]

    config, model, dataset, _, _, test_data = load_data_and_model(str(llmemf_checkpoint))
    state = raw["state_dict"]
    assert all(torch.equal(model.state_dict()[k], state[k].to(config["device"])) for k in state)
    assert str(config)  # Config.__str__ reads parameters


def test_unknown_keys_and_values_are_dropped(llmemf_checkpoint, tmp_path, caplog):
    evil = crafted(
        llmemf_checkpoint,
        tmp_path / "evil.pth",
        not_an_option="x",
        hidden_act={1: {2: [3, {"deep": None}]}},
        embedding_size=torch.zeros(1),  # allowed key, tensor value
    )
    config = load_checkpoint(evil)["config"]
    assert "not_an_option" not in config and "embedding_size" not in config
    assert config["hidden_act"] == {1: {2: [3, {"deep": None}]}}
    assert "'not_an_option'" in caplog.text and "'embedding_size'" in caplog.text


# ----------------------------------------------------------------------------- RecBole's sources

RECBOLE = Path(recbole.__file__).parent


def test_every_model_that_runs_its_config_is_refused_when_it_would():
    """RecBole's models that eval, exec or unpickle in their source are all in the table."""
    risky = re.compile(r"(?<![\w.])(eval|exec)\(|torch\.load\(|allow_pickle=True|pickle\.load")
    found = set()
    for path in (RECBOLE / "model").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if risky.search(text):
            classes = re.findall(r"^class (\w+)\(", text, re.M)
            found.update(c for c in classes if c.lower() == path.stem)
    assert found == set(checkpoint_safety._CONSTRUCTORS_THAT_RUN_CONFIG)


def test_every_key_recbole_reads_is_kept():
    """A key RecBole reads but the allow-list lacks would silently become None on reload."""
    read = set()
    for path in RECBOLE.rglob("*.py"):
        read.update(re.findall(r"config\[[\"'](\w+)[\"']\]", path.read_text(encoding="utf-8")))
    assert read - checkpoint_safety.allowed_keys() == set()
