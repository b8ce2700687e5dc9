"""Fixes that let RecBole 1.2.x run on today's numpy, torch and setuptools.

Each function repairs one upstream breakage, names the RecBole code it protects and is
idempotent; ``apply()`` runs them all and is called on ``import recbole_llmemf``.
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

# numpy 2 removed these; RecBole reads the first group in Config.compatibility_settings
# (configurator.py L625-635), which then sets the second group, the aliases numpy 1.24 removed,
# that RecBole's metrics and data code use (np.float: metrics.py L90-196, interaction.py L31,
# dataset.py L652). Set here too, with the very values Config sets, they no longer depend on a
# Config having been built in the process (load_data_and_model then evaluate, in a fresh one).
_NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,
}
_RECBOLE_NUMPY_ALIASES = {
    "bool": np.bool_,
    "int": np.int_,
    "float": np.float64,
    "complex": np.complex128,
    "object": np.object_,
    "str": np.str_,
    "long": np.int_,
    "unicode": np.str_,
}


def restore_numpy_aliases() -> None:
    """Restore the numpy aliases RecBole uses, where this numpy lacks them; never replace one.
    A deprecated alias (np.bool8 on numpy 1.x) still works and keeps its DeprecationWarning."""
    deprecated = getattr(np, "__deprecated_attrs__", {})
    for name, value in {**_NUMPY_ALIASES, **_RECBOLE_NUMPY_ALIASES}.items():
        # not hasattr: numpy 2 warns when asked for np.object, np.str
        if name not in vars(np) and name not in deprecated:
            setattr(np, name, value)


def stub_broken_ray() -> None:
    """``recbole.quick_start`` does ``from ray import tune`` at import time (quick_start.py L20).
    RecBole 1.2 pins ray<=2.6.3, which needs ``pkg_resources`` (gone in setuptools 81) and
    ``np.bool8`` (gone in numpy 2). The package's requirements keep both, so the real ray imports,
    and its ``tune.report`` does nothing outside a Tune session. Where ray still cannot be imported
    (an environment with other pins), a stub takes its place: ``tune.report``, which RecBole's
    ``objective_function`` calls after every trial (quick_start.py L223), does nothing, as outside
    a Tune session, and any other use of ``tune`` raises an ImportError naming the cause."""
    try:
        from ray import tune  # noqa: F401
    except (ImportError, AttributeError) as error:  # AttributeError: np.bool8 on numpy 2
        reason = (
            f"ray.tune could not be imported ({error}); RecBole's search with ray "
            "(run_hyper.py --tool Ray) needs it, HyperTuning with hyperopt does not"
        )

        def unavailable(name: str):
            if name.startswith("__"):  # the import machinery probes __path__, __spec__, ...
                raise AttributeError(name)
            raise ImportError(reason)

        tune = types.ModuleType("ray.tune")
        tune.__getattr__ = unavailable
        tune.report = _report_outside_a_session
        ray = types.ModuleType("ray")
        ray.tune = tune
        for name in [key for key in sys.modules if key == "ray" or key.startswith("ray.")]:
            del sys.modules[name]
        sys.modules.update({"ray": ray, "ray.tune": tune})


def _report_outside_a_session(*args, **kwargs) -> None:
    """The stub's ``tune.report``: no Tune session can exist without ray, so there is nothing to
    report to (the real ``tune.report`` also does nothing outside a session)."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint names something a RecBole checkpoint never holds; nothing of it was run."""


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


_checkpoint_pickle = types.ModuleType("recbole_llmemf.compat.checkpoint_pickle")
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
    """
    checkpoint = torch.load(
        f, map_location=map_location, pickle_module=_checkpoint_pickle, weights_only=False
    )
    from recbole.config import Config

    config = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    if type(config) is _checkpoint_config():
        config.__class__ = Config
        model_class = config.__dict__.get("model_class")
        if isinstance(model_class, _ModelClassName):
            config.model_class = _resolve(model_class.module, model_class.name)
    return checkpoint


def load_recbole_checkpoints_safely() -> None:
    """RecBole reloads its checkpoints with ``torch.load`` in ``Trainer.resume_checkpoint``
    (trainer.py L323), ``Trainer.evaluate`` (L583) and ``load_data_and_model`` (quick_start.py
    L250), which torch >= 2.6 refuses. RecBole's trainer module, and only it, sees a ``torch``
    whose ``load`` is :func:`load_checkpoint`; ``load_data_and_model`` imports torch inside the
    function, where no module attribute reaches, so it is replaced by :func:`load_data_and_model`.
    ``torch.load`` itself is left alone for everyone else."""
    import recbole.quick_start as quick_start_package
    import recbole.quick_start.quick_start as quick_start
    import recbole.trainer.trainer as trainer

    if trainer.torch is torch:
        recbole_torch = types.ModuleType("torch", "torch as RecBole's trainer module sees it")
        recbole_torch.__getattr__ = functools.partial(getattr, torch)
        recbole_torch.load = load_checkpoint
        trainer.torch = recbole_torch
    quick_start.load_data_and_model = load_data_and_model
    quick_start_package.load_data_and_model = load_data_and_model


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


def honour_use_gpu() -> None:
    """RecBole 1.2 documents ``use_gpu`` but picks CUDA whenever one is visible and ``gpu_id`` is
    set (configurator.py L490): ``use_gpu: False`` then still trains on the GPU while a model built
    by hand stays on the CPU. The device is set to the CPU where ``use_gpu`` is False."""
    from recbole.config import Config

    original = Config._init_device
    if getattr(original, "_llmemf_use_gpu", False):
        return

    @functools.wraps(original)
    def init_device(self) -> None:
        original(self)
        if not self.final_config_dict.get("use_gpu", True):
            self.final_config_dict["device"] = torch.device("cpu")

    init_device._llmemf_use_gpu = True
    Config._init_device = init_device


def apply() -> None:
    """Apply every fix; order matters: numpy and ray before RecBole's modules are imported."""
    restore_numpy_aliases()
    stub_broken_ray()
    load_recbole_checkpoints_safely()
    honour_use_gpu()
