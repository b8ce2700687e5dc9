"""Reading RecBole's checkpoints safely on torch >= 2.6, where ``torch.load`` refuses them.

:func:`load_checkpoint` unpickles with an allow-list (pickle's documented "Restricting Globals"),
then gives the checkpoint the config of :func:`recbole_llmemf.utils.checkpoint_safety.trusted_config`.
hooks.py makes RecBole's trainer module and ``load_data_and_model`` read checkpoints through it;
``torch.load`` itself stays torch's for everyone else.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import torch

from recbole_llmemf.utils.checkpoint_safety import refuse_unsafe_tar, trusted_config
from recbole_llmemf.utils.errors import UnsafeCheckpointError


def _is_one_of(obj: Any, allowed) -> bool:
    return any(obj is candidate for candidate in allowed)  # identity: no __eq__ of a loaded object


def _resolve(module: str, name: str) -> Any:
    """RecBole's own modules may be imported (get_model imports models lazily); others, such as a
    plugin's model, must already be loaded: importing a module runs its code."""
    if module not in sys.modules and module.split(".")[0] != "recbole":
        raise UnsafeCheckpointError(
            f"{module}.{name} is not allowed in a RecBole checkpoint: {module} is not loaded "
            "(a plugin's model: import the plugin before loading)"
        )
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@functools.cache
def _checkpoint_callables() -> dict[tuple[str, str], Callable]:
    """What a RecBole checkpoint calls while it loads: tensor rebuilders, OrderedDict,
    torch.device, RecBole's enums, numpy arrays, dtypes and scalars. None of them runs code it is
    handed (torch's ``_rebuild_from_type_v2``, which calls its first argument, is left out)."""
    from numpy._core import multiarray as core  # numpy 2; numpy 1.26 maps it to numpy.core's
    from recbole.utils import enum_type

    functions = [
        OrderedDict,
        torch.device,
        torch.Size,
        torch._utils._rebuild_tensor_v2,
        torch._utils._rebuild_parameter,
        np.dtype,
        set,
        complex,
        *(c for c in vars(enum_type).values() if isinstance(c, type) and issubclass(c, Enum)),
    ]
    table = {(f.__module__, f.__qualname__): f for f in functions}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1 and 2 names
        table[(module, "_reconstruct")] = core._reconstruct
        table[(module, "scalar")] = core.scalar
    return table


@functools.cache
def _checkpoint_classes() -> tuple[type, ...]:
    """Data classes a checkpoint creates and fills: numpy arrays, scipy's sparse matrices (models'
    ``other_parameter``, e.g. ItemKNN's) and yaml loader classes (``Config`` keeps one)."""
    import scipy.sparse
    import yaml

    sparse = [c for c in vars(scipy.sparse).values() if isinstance(c, type)]
    matrices = (scipy.sparse.sparray, scipy.sparse.spmatrix)
    loaders = (yaml.BaseLoader, yaml.SafeLoader, yaml.FullLoader, yaml.Loader)
    return (np.ndarray, np.matrix, *loaders, *(c for c in sparse if issubclass(c, matrices)))


@functools.cache
def _checkpoint_config() -> type:
    from recbole.config import Config

    class CheckpointConfig(Config):
        """``Config`` while a checkpoint loads: created empty and given its attributes, as pickle
        restores it. Calling it, which a crafted pickle can ask for, would run ``Config.__init__``,
        which ``eval``s the strings of its config dict (configurator.py L124-134): refused."""

        def __init__(self, *args, **kwargs):
            raise UnsafeCheckpointError("a checkpoint may not call Config(...)")

        def __setstate__(self, state: dict) -> None:  # not Config.__getattr__'s config lookup
            self.__dict__.update(state)

    return CheckpointConfig


@dataclass(frozen=True)
class _ModelClassName:
    """A model class as a checkpoint names it (``Config.model_class``): a name, not callable, so
    the pickle cannot call a model's ``__init__``; the real class is put back after loading."""

    module: str
    name: str

    def __call__(self, *args, **kwargs):
        raise UnsafeCheckpointError(f"a checkpoint may not call {self.module}.{self.name}(...)")


class _CheckpointUnpickler(pickle.Unpickler):
    """Python's documented way to restrict unpickling (pickle docs, "Restricting Globals"): only
    the objects above can be named, so only harmless callables can be called."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _checkpoint_callables():
            return _checkpoint_callables()[(module, name)]
        from recbole.config import Config
        from recbole.model.abstract_recommender import AbstractRecommender

        obj = _resolve(module, name)
        if obj is Config:
            return _checkpoint_config()
        if isinstance(obj, type) and issubclass(obj, AbstractRecommender):
            return _ModelClassName(module, name)
        if isinstance(obj, torch.dtype) or _is_one_of(obj, _checkpoint_classes()):
            return obj
        raise UnsafeCheckpointError(f"{module}.{name} is not allowed in a RecBole checkpoint")


_checkpoint_pickle = types.ModuleType("recbole_llmemf.utils.checkpoint.checkpoint_pickle")
_checkpoint_pickle.Unpickler = _CheckpointUnpickler
_checkpoint_pickle.load = lambda file, **kwargs: _CheckpointUnpickler(file, **kwargs).load()


def load_checkpoint(f: Any, map_location: Any = None) -> Any:
    """``torch.load`` for a checkpoint RecBole wrote: tensors, its ``Config``, enums, numpy and
    scipy values, its model's class; a file naming anything else is refused before it runs.

    torch >= 2.6 loads with ``weights_only=True``, which refuses the ``Config`` inside. Allow-listing
    ``Config`` there (``torch.serialization.add_safe_globals`` or the ``safe_globals`` context
    manager) is no fix: that list is one for the whole process, so every thread's ``torch.load``
    would then accept a pickle that calls ``Config(config_dict={key: "<code>"})``, whose
    ``__init__`` ``eval``s the string. This loader keeps its own allow-list and never touches
    ``torch.load`` or torch's allow-list; in it ``Config`` is restored without being called and
    model classes come back as names, so a file can call nothing but the harmless constructors
    listed above.

    What RecBole then does with the restored ``Config`` is limited too: the checkpoint gets the
    Config of :func:`~recbole_llmemf.utils.checkpoint_safety.trusted_config` (known option keys
    with plain values, its own model class only, no save paths), and a legacy .tar checkpoint must
    hold regular files only (:func:`~recbole_llmemf.utils.checkpoint_safety.refuse_unsafe_tar`).
    """
    refuse_unsafe_tar(f)
    checkpoint = torch.load(
        f, map_location=map_location, pickle_module=_checkpoint_pickle, weights_only=False
    )
    if not isinstance(checkpoint, dict) or "config" not in checkpoint:
        return checkpoint
    config = checkpoint["config"]
    if type(config) is not _checkpoint_config():  # RecBole code would read a dict's keys as well
        raise UnsafeCheckpointError(f"a checkpoint's config is a Config, not {type(config)}")
    model_class = config.__dict__.get("model_class")
    if isinstance(model_class, _ModelClassName):
        config.model_class = _resolve(model_class.module, model_class.name)
    checkpoint["config"] = trusted_config(config)
    return checkpoint


# What RecBole's trainer module sees as ``torch`` (hooks.py): torch, except that ``load`` reads a
# checkpoint through :func:`load_checkpoint`. torch >= 2.6 refuses RecBole's checkpoints in
# Trainer.resume_checkpoint (trainer.py L323) and Trainer.evaluate (L583); ``torch.load`` itself
# stays torch's for everyone else.
recbole_torch = types.ModuleType("torch", "torch as RecBole's trainer module sees it")
recbole_torch.__getattr__ = functools.partial(getattr, torch)
recbole_torch.load = load_checkpoint


def load_data_and_model(model_file: str | os.PathLike) -> tuple:
    """RecBole's ``load_data_and_model`` (quick_start.py L233-266) step for step, through RecBole's
    own functions, except that the checkpoint is read by :func:`load_checkpoint`."""
    from recbole.quick_start import quick_start

    checkpoint = load_checkpoint(model_file)
    config = checkpoint["config"]
    quick_start.init_seed(config["seed"], config["reproducibility"])
    quick_start.init_logger(config)
    logger = logging.getLogger()
    logger.info(config)
    dataset = quick_start.create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = quick_start.data_preparation(config, dataset)
    quick_start.init_seed(config["seed"], config["reproducibility"])
    model = quick_start.get_model(config["model"])(config, train_data._dataset)
    model = model.to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
