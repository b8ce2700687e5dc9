"""Callbacks for whoever watches a run, such as the benchmark: the plugin's trainer tells the
current observer when it is built, lets it run ``fit`` (checkpoints, resuming, time budgets) and
reports the time of each training epoch and evaluation. Without an observer (any run outside
``llmemf-bench``) the trainer is RecBole's."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Protocol


class Observer(Protocol):
    def model_requested(self) -> None: ...
    def trainer_built(self, trainer) -> None: ...
    def fit(self, trainer, fit: Callable, train_data, *args, **kwargs): ...
    def epoch_trained(self, seconds: float) -> None: ...
    def evaluated(self, seconds: float) -> None: ...


_observers: list[Observer] = []


@contextlib.contextmanager
def observing(observer: Observer) -> Iterator[Observer]:
    """Make ``observer`` the current one inside the block."""
    _observers.append(observer)
    try:
        yield observer
    finally:
        _observers.remove(observer)


def current() -> Observer | None:
    return _observers[-1] if _observers else None


class ObservedTraining:
    """Trainer mixin: tells the current observer (:func:`current`), if any."""

    def __init__(self, config, model):
        super().__init__(config, model)
        observer = current()
        if observer is not None:
            observer.trainer_built(self)

    def fit(self, train_data, *args, **kwargs):
        observer = current()
        if observer is None:
            return super().fit(train_data, *args, **kwargs)
        return observer.fit(self, super().fit, train_data, *args, **kwargs)

    def _train_epoch(self, *args, **kwargs):
        with _timed("epoch_trained"):
            return super()._train_epoch(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        with _timed("evaluated"):
            return super().evaluate(*args, **kwargs)


@contextlib.contextmanager
def _timed(event: str) -> Iterator[None]:
    observer, start = current(), time.perf_counter()
    try:
        yield
    finally:
        if observer is not None:
            getattr(observer, event)(time.perf_counter() - start)
