"""What a run will cost, said before the long wait: the model's size when it is built, and the
time of an epoch once the first training batches have run (RecBole's progress bar is off by
default and says nothing until an epoch ends)."""

from __future__ import annotations

import logging
import math
import time

from torch import nn

logger = logging.getLogger(__name__)

PROBE_BATCHES = 3


def announce_cost(model: nn.Module, config, dataset) -> None:
    """Log the model's size and epoch length now, and the epoch's time after a few batches."""
    from recbole_llmemf.training_data import sequences_per_batch, training_pairs

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
    if n_batches > PROBE_BATCHES:  # a shorter epoch ends before an estimate could help
        EpochTimer(model, n_batches)


class EpochTimer:
    """Wraps the model's ``calculate_loss`` (RecBole's trainer calls it once per training batch),
    logs the epoch estimate once and unwraps itself. Timed from the start of batch 1 to the start
    of batch ``PROBE_BATCHES + 1``: whole training steps, with data loading, backward pass and
    optimizer step."""

    def __init__(self, model: nn.Module, n_batches: int):
        self.model, self.n_batches = model, n_batches
        self.started: float | None = None
        self.seen = 0
        model.calculate_loss = self  # an instance attribute: the class's method stays as it is

    def __call__(self, interaction):
        self.seen += 1
        if self.seen <= PROBE_BATCHES + 1:
            now = time.perf_counter()
            self.started = self.started or now
            if self.seen == PROBE_BATCHES + 1:
                self._report((now - self.started) / PROBE_BATCHES)
                # back to the class's method (the trainer may still hold this wrapper this epoch)
                del self.model.calculate_loss
        return type(self.model).calculate_loss(self.model, interaction)

    def _report(self, per_batch: float) -> None:
        logger.info(
            "%s: the first %d training batches took %.2f s each: an epoch of %s batches takes "
            "about %s here",
            type(self.model).__name__,
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
