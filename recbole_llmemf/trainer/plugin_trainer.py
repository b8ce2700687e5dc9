"""The trainer every model gets where RecBole's ``get_trainer`` is asked (hooks.py): RecBole's own
class (``Trainer``, ``TraditionalTrainer``, ...) with the plugin's mixins, each a no-op without
the config keys that turn it on."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable

from recbole_llmemf.trainer.distributed import DistributedEvaluation
from recbole_llmemf.trainer.domain_aware import DomainAwareEvaluation
from recbole_llmemf.trainer.mixins import mixed_in
from recbole_llmemf.trainer.observer import ObservedTraining
from recbole_llmemf.utils.options import plugin_options_on


class OwnCheckpointFile:
    """Trainer mixin: the run's checkpoint is ``<Model>-<time>-<pid>-<random>.pth``, its own file.

    RecBole names it ``<Model>-<time to the second>.pth`` (trainer.py L132), so two runs started in
    the same second (the README runs the ``full`` and ``sampled999`` benchmarks at once) write one
    file, and each may test the other's model. On for configs that use this plugin's options: a
    ``domain_field`` or a ``protocol`` set, or ``checkpoint_per_run: True`` (which the plugin's
    ``run_recbole`` command sets); ``checkpoint_per_run: False`` keeps RecBole's name. Not in
    multi-process training, whose processes must all name rank 0's file.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        per_run = config["checkpoint_per_run"]
        if per_run is None:
            per_run = plugin_options_on(config)
        if per_run and config["single_spec"] and getattr(self, "saved_model_file", None):
            stem, suffix = os.path.splitext(self.saved_model_file)
            self.saved_model_file = f"{stem}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


class PluginTrainer(
    ObservedTraining, OwnCheckpointFile, DomainAwareEvaluation, DistributedEvaluation
):
    """The plugin's trainer mixins, outermost first: the benchmark's observer, a checkpoint file of
    its own, domain-aware evaluation, multi-process evaluation (the domain split runs first, so
    each part is gathered across processes)."""


def plugin_trainer(get_trainer: Callable, model_type, model_name: str) -> type:
    """``get_trainer``'s class with :class:`PluginTrainer` mixed in, one class per trainer."""
    return mixed_in(PluginTrainer, get_trainer(model_type, model_name), "DomainAware")
