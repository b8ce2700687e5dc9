"""LLMEMF's trainer: RecBole's ``Trainer``, saying what a run will cost before the long wait, and
choosing the content profile's scale on the validation set.

RecBole looks up ``recbole.trainer.<Model>Trainer`` by name (utils.py L87-110), so hooks.py puts
this class there. It logs the model's size and epoch length when training starts, and the time of
an epoch once the first training batches have run (RecBole's progress bar is off by default and
says nothing until an epoch ends). With ``content_profile_scales``, every validation first picks,
per target domain, the content profile's settings that validate best (profile_choice.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from recbole.trainer import Trainer

from recbole_llmemf.data.training_data import sequences_per_batch, training_pairs
from recbole_llmemf.trainer.profile_choice import choose_profile

logger = logging.getLogger(__name__)

PROBE_BATCHES = 3


class LLMEMFTrainer(Trainer):
    def _valid_epoch(self, valid_data, show_progress=False):
        if getattr(self.model, "content_profile", None) is not None:
            choose_profile(self, valid_data)
        return super()._valid_epoch(valid_data, show_progress)

    def fit(self, train_data, *args, **kwargs):
        self._n_batches = announce_cost(self.model, self.config, train_data._dataset)
        return super().fit(train_data, *args, **kwargs)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        n_batches = self.__dict__.pop("_n_batches", 0)  # the first epoch of this fit only
        if loss_func is None and n_batches > PROBE_BATCHES:  # a shorter epoch ends before
            loss_func = EpochTimer(self.model.calculate_loss, type(self.model).__name__, n_batches)
        return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)


def announce_cost(model, config, dataset) -> int:
    """Log the model's size and epoch length; returns the batches per epoch."""
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_batches = math.ceil(len(dataset) / sequences_per_batch(config, dataset))
    logger.info(
        "%s: %s trainable parameters (hidden_size %d, inner_size %d, n_layers %d, n_heads %d); "
        "an epoch is %s training pairs in %s batches (train_batch_size %d)",
        type(model).__name__,
        f"{parameters / 1e6:.2f}M",
        config["hidden_size"],
        config["inner_size"],
        config["n_layers"],
        config["n_heads"],
        f"{training_pairs(dataset):,}",
        f"{n_batches:,}",
        config["train_batch_size"],
    )
    return n_batches


class EpochTimer:
    """The loss function of RecBole's ``_train_epoch`` (its ``loss_func`` argument) for one epoch:
    the model's own loss, and the epoch estimate logged once. Timed from the start of batch 1 to
    the start of batch ``PROBE_BATCHES + 1``: whole training steps, with data loading, backward
    pass and optimizer step."""

    def __init__(self, calculate_loss: Callable, model_name: str, n_batches: int):
        self.calculate_loss, self.model_name, self.n_batches = calculate_loss, model_name, n_batches
        self.started: float | None = None
        self.seen = 0

    def __call__(self, interaction):
        self.seen += 1
        if self.seen <= PROBE_BATCHES + 1:
            now = time.perf_counter()
            self.started = self.started or now
            if self.seen == PROBE_BATCHES + 1:
                self._report((now - self.started) / PROBE_BATCHES)
        return self.calculate_loss(interaction)

    def _report(self, per_batch: float) -> None:
        logger.info(
            "%s: the first %d training batches took %.2f s each: an epoch of %s batches takes "
            "about %s here",
            self.model_name,
            PROBE_BATCHES,
            per_batch,
            f"{self.n_batches:,}",
            _duration(per_batch * self.n_batches),
        )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
