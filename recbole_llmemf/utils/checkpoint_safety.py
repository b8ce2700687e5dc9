"""What a checkpoint may make RecBole do: build the model whose weights it holds, and nothing else.

``checkpoint.load_checkpoint`` restores a checkpoint's ``Config`` without calling anything, but RecBole
then acts on its values: ``KD_DAGFM.__init__`` evals ``config['teacher']`` (kd_dagfm.py L44),
``create_dataset`` and ``data_preparation`` unpickle ``dataset_save_path``, ``dataloaders_save_path``
or a file in ``checkpoint_dir`` (data/utils.py L61, L122), ``save_dataset`` and ``save_dataloaders``
write pickles into ``checkpoint_dir``, and ``init_logger`` creates ``log/<model>/`` before
``get_model`` refuses a name. :func:`trusted_config` rebuilds the ``Config`` from what an honest run
puts there and refuses a checkpoint that contradicts itself, before any RecBole code sees it;
:func:`refuse_unsafe_tar` keeps ``torch.load`` from following links out of a legacy .tar checkpoint.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tarfile
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from recbole_llmemf.utils.errors import UnsafeCheckpointError

if TYPE_CHECKING:
    from recbole.config import Config

logger = logging.getLogger(__name__)

# Keys no yaml file defines that an honest checkpoint holds: RecBole's Config sets them
# (configurator.py _set_default_parameters, _init_device, _set_eval_neg_sample_args), its
# multi-process start passes them, its code reads the third group without a default (a user sets
# them), its data transforms and KD_DAGFM write the upper-case ones and `feature_num` into the
# config while they run, and this plugin reads the last group (a dataset's yaml beside its files
# sets the first two). tests/test_checkpoint_safety.py checks that RecBole reads no other key.
_KEYS_WITHOUT_YAML = {
    *("model", "dataset", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "device", "single_spec"),
    *("local_rank", "verbose", "valid_neg_sample_args", "test_neg_sample_args"),
    *("nproc", "world_size", "offset", "ip", "port"),
    *("encoding", "cin", "contrast", "eta", "has_residual", "norm", "sim", "tail_ratio"),
    *("token_num_threshold", "use_filter", "xgb_early_stopping_rounds"),
    *("MASK_ITEM_SEQ", "POS_ITEMS", "NEG_ITEMS", "MASK_INDEX", "CROP_ITEM_SEQ"),
    *("CROP_ITEM_SEQ_LEN", "REORDER_ITEM_SEQ", "INVERSE_ITEM_SEQ", "feature_num"),
    *("domain_field", "protocol", "checkpoint_per_run", "dist_backend", "train_in_target_domain"),
}

# RecBole's dataset yamls that map dataset names to download URLs, not config keys.
_URL_YAMLS = {"url.yaml", "kg_url.yaml"}

# RecBole models whose constructor does more with a config value than size its layers: evaluates it,
# or unpickles a file it names (torch.load does by default before torch 2.6; np.load with
# allow_pickle=True always). Each predicate says, for the config the model gets, whether it would.
# Those torch.loads are weights-only on torch >= 2.6, which fails for RecBole's own checkpoint
# files (they hold a Config): the honest checkpoints refused here are the few trained from a
# pretrained file of bare tensors, whose reload needs that file on the loading machine anyway.
# tests/test_checkpoint_safety.py checks this table against RecBole's model sources.
_CONSTRUCTORS_THAT_RUN_CONFIG: dict[str, tuple[Callable[[dict], bool], str]] = {
    "KD_DAGFM": (lambda c: True, "its constructor evals config['teacher'] (kd_dagfm.py L44)"),
    "LDiffRec": (
        lambda c: type(c.get("n_cate")) in (int, float) and c["n_cate"] > 1,
        "with n_cate > 1 its constructor unpickles <data_path>/item_emb.npy (ldiffrec.py L232)",
    ),
    "NeuMF": (
        lambda c: bool(c.get("use_pretrain")),
        "with use_pretrain its constructor torch.loads mf_pretrain_path (neumf.py L84)",
    ),
    "NAIS": (
        lambda c: c.get("pretrain_path") is not None,
        "with pretrain_path its constructor torch.loads that file (nais.py L127)",
    ),
    "ConvNCF": (
        lambda c: c.get("train_method") == "after_pretrain",
        "after_pretrain, its constructor torch.loads pre_model_path (convncf.py L82)",
    ),
    "RaCT": (
        lambda c: c.get("train_stage") in ("critic_pretrain", "finetune"),
        "past actor_pretrain, its constructor torch.loads pre_model_path (ract.py L75, L84)",
    ),
    "S3Rec": (
        lambda c: c.get("train_stage") == "finetune",
        "in finetune, its constructor torch.loads pre_model_path (s3rec.py L120)",
    ),
}

_SCALARS = (type(None), bool, int, float, str)
_MAX_DEPTH = 16  # deeper (or cyclic) values are not a config's; yaml configs nest 3 deep


class _NotPlain(Exception):
    """A value that no yaml file or RecBole's Config gives a config key."""


def _yaml_keys(folder: Path) -> set[str]:
    keys: set[str] = set()
    for path in folder.rglob("*.yaml"):
        if path.name not in _URL_YAMLS:
            keys.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return keys


@functools.cache
def recbole_defaults() -> dict[str, Any]:
    """RecBole's overall.yaml: its defaults, such as ``checkpoint_dir: saved``."""
    import recbole

    path = Path(recbole.__file__).parent / "properties" / "overall.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@functools.cache
def allowed_keys() -> frozenset[str]:
    """The keys a checkpoint's config may keep: those RecBole's yaml files (overall, models,
    datasets, quick-start) or this plugin's define, RecBole's argument lists, and the keys above."""
    import recbole
    from recbole.utils import argument_list

    from recbole_llmemf.config.configurator import PROPERTIES

    lists = ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments")
    return frozenset(
        _yaml_keys(Path(recbole.__file__).parent / "properties")
        | _yaml_keys(Path(str(PROPERTIES)))
        | {key for name in lists for key in getattr(argument_list, name)}
        | _KEYS_WITHOUT_YAML
    )


def safe_values() -> dict[str, Any]:
    """Where RecBole reads or writes pickles is never the checkpoint's choice: RecBole's default
    ``checkpoint_dir`` (relative to the working directory), no save paths, nothing saved."""
    return {
        "save_dataset": False,
        "save_dataloaders": False,
        "dataset_save_path": None,
        "dataloaders_save_path": None,
        "checkpoint_dir": recbole_defaults()["checkpoint_dir"],
    }


@functools.cache
def _recbole_enums() -> frozenset[type]:
    from recbole.utils import enum_type

    return frozenset(
        c for c in vars(enum_type).values() if isinstance(c, type) and issubclass(c, Enum)
    )


def _plain(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` if it is made of what yaml and RecBole's Config give config values:
    None, bool, int, float, str, lists, tuples and dicts of them, a torch.device, RecBole's enums.
    Exact types: the checkpoint unpickler builds no subclass, and none has a place in a config."""
    kind = type(value)
    if depth > _MAX_DEPTH:
        raise _NotPlain
    if kind in _SCALARS or kind is torch.device or kind in _recbole_enums():
        return value
    if kind in (list, tuple):
        return kind(_plain(item, depth + 1) for item in value)
    if kind in (dict, OrderedDict) and all(type(key) in _SCALARS for key in value):
        return {key: _plain(item, depth + 1) for key, item in value.items()}
    raise _NotPlain


def _model_class(values: dict[str, Any], saved_class: Any) -> type:
    """The class of ``values['model']``, which must be a known model, the class the weights were
    saved from, and one whose constructor does not act on config values beyond their sizes."""
    from recbole.utils import get_model

    from recbole_llmemf.utils.models import known_models

    name = values.get("model")
    if type(name) is not str or name not in known_models():
        raise UnsafeCheckpointError(f"the checkpoint names model {name!r}, not a known model")
    model_class = get_model(name)
    if saved_class is not model_class:
        saved = getattr(saved_class, "__qualname__", saved_class)
        raise UnsafeCheckpointError(
            f"the checkpoint names model {name!r} but was saved from model class {saved!r}"
        )
    if values.get("MODEL_TYPE") is not model_class.type:  # Config sets it from the class
        raise UnsafeCheckpointError(
            f"the checkpoint's MODEL_TYPE {values.get('MODEL_TYPE')!r} is not {name}'s "
            f"{model_class.type!r}"
        )
    runs_config, reason = _CONSTRUCTORS_THAT_RUN_CONFIG.get(name, (lambda c: False, ""))
    if runs_config(values):
        raise UnsafeCheckpointError(f"{name} checkpoints are not loaded: {reason}")
    return model_class


def _dataset_name(name: Any) -> str:
    """RecBole joins the dataset name into file names (saved/<dataset>-<class>.pth, which it
    unpickles when present; log/<model>/<model>-<dataset>-...): one path component only."""
    if type(name) is not str or name in ("", ".", "..") or re.search(r"[/\\\0]", name):
        raise UnsafeCheckpointError(f"the checkpoint names dataset {name!r}, not a dataset name")
    return name


def _allowed_values(final: dict) -> dict:
    """The items of ``final`` with an allowed key and a plain value; the rest dropped, logged."""
    values, dropped = {}, []
    for key, value in final.items():
        try:
            if type(key) is not str or key not in allowed_keys():
                raise _NotPlain
            values[key] = _plain(value)
        except _NotPlain:
            dropped.append(repr(key))
    if dropped:
        logger.warning(
            "checkpoint config: ignored %s (not a RecBole or recbole-llmemf option, or not a "
            "plain value)",
            ", ".join(dropped),
        )
    return values


def _force_safe_values(values: dict) -> None:
    """Save paths, ``checkpoint_dir`` and the save switches get :func:`safe_values`."""
    for key, safe in safe_values().items():
        if values.get(key, safe) != safe:
            logger.warning(
                "checkpoint config: %s=%r ignored, %r used (a checkpoint does not choose where "
                "files are read or written)",
                key,
                values[key],
                safe,
            )
        values[key] = safe


def trusted_config(loaded: Config) -> Config:
    """A new ``Config`` holding only what RecBole acts on safely of a checkpoint's restored one.

    Its ``final_config_dict`` (all RecBole reads after construction) keeps the keys of
    :func:`allowed_keys` whose values are plain (:func:`_plain`); others are dropped with a warning.
    The model must be a known one, the class the weights were saved from, and not one that acts on
    its config beyond layer sizes; the dataset name must be one path component. Save paths,
    ``checkpoint_dir`` and the save switches get :func:`safe_values`. The other layers of the
    Config (internal, external, file, variable, command-line dicts) are only read while a Config
    is built, and stay empty. Raises :class:`UnsafeCheckpointError` before anything is created.
    """
    from recbole.config import Config

    state = vars(loaded)
    final = state.get("final_config_dict")
    if type(final) is not dict:
        raise UnsafeCheckpointError("the checkpoint's Config holds no final_config_dict")
    values = _allowed_values(final)
    model_class = _model_class(values, state.get("model_class"))
    dataset = _dataset_name(values.get("dataset"))
    _force_safe_values(values)
    parameters = state.get("parameters") if type(state.get("parameters")) is dict else {}
    config = Config.__new__(Config)  # not Config(): __init__ evals strings and reads sys.argv
    config.__dict__.update(
        model=values["model"],
        model_class=model_class,
        dataset=dataset,
        final_config_dict=values,
        # Config.__str__ groups keys by these categories
        parameters={
            category: [k for k in names if type(k) is str and k in values]
            for category, names in parameters.items()
            if type(category) is str and type(names) is list
        },
        yaml_loader=yaml.FullLoader,  # Dataset reads RecBole's url.yaml with it; never yaml.Loader
        internal_config_dict={},
        external_config_dict={},
        file_config_dict={},
        variable_config_dict={},
        cmd_config_dict={},
    )
    return config


_MEMBER_KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.DIRTYPE: "a directory",
}


def refuse_unsafe_tar(f: Any) -> None:
    """Refuse a legacy .tar checkpoint with a member that is not a regular file.

    ``torch.load`` reads such a file by extracting its ``storages`` and ``tensors`` members into a
    temporary folder and opening them (serialization.py ``legacy_load``): a member that is a link
    makes it read any local file, one that is (or links to) a FIFO blocks it for ever. Zip
    checkpoints (all torch has written since 1.6) are not tar files and pass unread but for their
    first 512 bytes. A file object is put back where it was.
    """
    if isinstance(f, (str, os.PathLike)):
        members = _tar_members(name=os.fspath(f))
    elif hasattr(f, "seekable") and f.seekable():
        position = f.tell()
        try:
            members = _tar_members(fileobj=f)
        finally:
            f.seek(position)
    else:
        return  # torch reads the legacy tar format from seekable files only
    unsafe = [
        f"{m.name!r} is {_MEMBER_KINDS.get(m.type, f'of tar type {m.type!r}')}"
        for m in members
        if not m.isreg()
    ]
    if unsafe:
        raise UnsafeCheckpointError(
            "a legacy .tar checkpoint may hold regular files only, and "
            + "; ".join(unsafe)
            + " (torch.load would follow it out of the checkpoint)"
        )


def _tar_members(**source: Any) -> list[tarfile.TarInfo]:
    """The members of a tar file, as torch opens it ("r:"); none where it is no tar file (torch then
    reads it as a zip or a pickle). A tar whose later headers are damaged is refused: which member
    torch would extract is then anyone's guess."""
    try:
        tar = tarfile.open(mode="r:", **source)
    except tarfile.TarError:
        return []
    with tar:
        try:
            return tar.getmembers()
        except tarfile.TarError as error:
            raise UnsafeCheckpointError(f"a damaged legacy .tar checkpoint: {error}") from None
