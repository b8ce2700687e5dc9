"""Fixes that let RecBole 1.2.x run on today's numpy, torch and setuptools.

Each function repairs one upstream breakage, names the RecBole code it protects and is
idempotent; ``apply()`` runs them all and is called on ``import recbole_llmemf``.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import types
from collections.abc import Callable, Iterator

import numpy as np
import torch

_NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,
}


def restore_numpy_aliases() -> None:
    """numpy 2 removed aliases that RecBole's ``Config.compatibility_settings`` still reads
    (recbole/config/configurator.py L625-635)."""
    for name, value in _NUMPY_ALIASES.items():
        if not hasattr(np, name):
            setattr(np, name, value)


def stub_broken_ray() -> None:
    """``recbole.quick_start`` does ``from ray import tune`` at import time (quick_start.py L20),
    and ray needs ``pkg_resources``, which setuptools >= 81 no longer ships. ``tune`` is only used by
    RecBole's hyper-parameter search, so a broken ray is replaced by a stub that fails when used."""
    try:
        from ray import tune  # noqa: F401
    except ImportError as error:
        reason = (
            f"ray.tune could not be imported ({error}); RecBole's hyper-parameter search needs it"
        )

        def unavailable(name: str):
            if name.startswith("__"):  # the import machinery probes __path__, __spec__, ...
                raise AttributeError(name)
            raise ImportError(reason)

        tune = types.ModuleType("ray.tune")
        tune.__getattr__ = unavailable
        ray = types.ModuleType("ray")
        ray.tune = tune
        for name in [key for key in sys.modules if key == "ray" or key.startswith("ray.")]:
            del sys.modules[name]
        sys.modules.update({"ray": ray, "ray.tune": tune})


@contextlib.contextmanager
def trusted_checkpoint_loading() -> Iterator[None]:
    """Let ``torch.load`` unpickle the checkpoint RecBole itself wrote (it stores a ``Config``).

    torch >= 2.6 defaults to ``weights_only=True``. Only calls made inside this block get the old
    default; everywhere else safe loading stays on.
    """
    original = torch.load

    @functools.wraps(original)
    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def _with_trusted_loading(function: Callable) -> Callable:
    if getattr(function, "_llmemf_trusted", False):
        return function

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with trusted_checkpoint_loading():
            return function(*args, **kwargs)

    wrapper._llmemf_trusted = True
    return wrapper


def allow_recbole_checkpoint_reload() -> None:
    """RecBole reloads its own checkpoints in ``Trainer.evaluate`` (trainer.py L583),
    ``Trainer.resume_checkpoint`` (L323) and ``load_data_and_model`` (quick_start.py L250)."""
    import recbole.quick_start as quick_start_package
    from recbole.quick_start import quick_start
    from recbole.trainer import Trainer

    Trainer.evaluate = _with_trusted_loading(Trainer.evaluate)
    Trainer.resume_checkpoint = _with_trusted_loading(Trainer.resume_checkpoint)
    trusted = _with_trusted_loading(quick_start.load_data_and_model)
    quick_start.load_data_and_model = trusted
    quick_start_package.load_data_and_model = trusted


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
    allow_recbole_checkpoint_reload()
    honour_use_gpu()
