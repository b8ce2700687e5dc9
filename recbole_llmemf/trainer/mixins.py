"""Trainer classes with one of the plugin's mixins added, built once per (mixin, trainer) pair."""

from __future__ import annotations

import functools


@functools.cache
def mixed_in(mixin: type, trainer_class: type, prefix: str) -> type:
    """``trainer_class`` with ``mixin`` first in its bases, named ``<prefix><trainer name>``;
    ``trainer_class`` itself where it already has the mixin. Cached, so one class each: RecBole's
    get_trainer is called per run and isinstance checks must keep working across runs."""
    if issubclass(trainer_class, mixin):
        return trainer_class
    return type(f"{prefix}{trainer_class.__name__}", (mixin, trainer_class), {})
