"""Fixes that let RecBole 1.2.x run on today's numpy, torch and setuptools.

Each piece repairs one upstream breakage and names the RecBole code it protects; hooks.py installs
them (its first rows, before RecBole is imported) and can undo them.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

import numpy as np

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


def restore_numpy_aliases() -> Callable[[], None]:
    """Restore the numpy aliases RecBole uses, where this numpy lacks them; never replace one.
    A deprecated alias (np.bool8 on numpy 1.x) still works and keeps its DeprecationWarning.
    Returns the undo: the aliases added here removed again."""
    deprecated = getattr(np, "__deprecated_attrs__", {})
    added = []
    for name, value in {**_NUMPY_ALIASES, **_RECBOLE_NUMPY_ALIASES}.items():
        # not hasattr: numpy 2 warns when asked for np.object, np.str
        if name not in vars(np) and name not in deprecated:
            setattr(np, name, value)
            added.append(name)

    def undo() -> None:
        for name in added:
            vars(np).pop(name, None)

    return undo


def stub_broken_ray() -> Callable[[], None] | None:
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
        broken = {k: v for k, v in sys.modules.items() if k == "ray" or k.startswith("ray.")}
        for name in broken:
            del sys.modules[name]
        sys.modules.update({"ray": ray, "ray.tune": tune})

        def undo() -> None:
            for name in ("ray", "ray.tune"):
                sys.modules.pop(name, None)
            sys.modules.update(broken)

        return undo
    return None


def _report_outside_a_session(*args, **kwargs) -> None:
    """The stub's ``tune.report``: no Tune session can exist without ray, so there is nothing to
    report to (the real ``tune.report`` also does nothing outside a session)."""
