"""One benchmark run's training through the plugin's trainer (trainer/observer.py): timing,
resumable checkpoints after every epoch, and the time budget."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from recbole_llmemf.bench.records import Plan, Run, differing_keys
from recbole_llmemf.bench.report import (
    best_epoch_index,
)
from recbole_llmemf.bench.specs import effective_config


class _BudgetSpent(Exception):
    """Raised at the end of an epoch when the next one would overrun ``--time-budget``."""


class RunObserver:
    """Watches one run through the plugin's trainer (trainer/observer.py): times RecBole's training
    epochs, model construction and fit, and the (outer) evaluations; records the effective config
    the trainer is built with; with a ``plan``, gives the trainer its checkpoint files, resumes it
    and keeps its resumable checkpoint after every epoch. ``trainers``: those built meanwhile."""

    def __init__(self, run: Run, plan: Plan | None = None):
        self.run, self.plan = run, plan
        self.trainers: list = []
        self.train_dataset = None  # the training split the run's fit received
        self._model_requested: float | None = None
        self._build_seconds = 0.0

    def model_requested(self) -> None:
        self._model_requested = time.perf_counter()

    def trainer_built(self, trainer) -> None:
        # from get_model to the trainer: the model's construction (ItemKNN's similarity matrix:
        # training time, for the Cost table), its FLOPs count and RecBole's logging of it
        if self._model_requested is not None:
            self._build_seconds += time.perf_counter() - self._model_requested
            self._model_requested = None
        self.run.config = effective_config(trainer.config, self.run.config)
        self.trainers.append(trainer)

    def fit(self, trainer, fit, train_data, *args, **kwargs):
        if trainer not in self.trainers:  # a trainer of someone else's
            return fit(train_data, *args, **kwargs)
        self.train_dataset = train_data._dataset
        start = time.perf_counter()
        try:
            if self.plan is None:
                return fit(train_data, *args, **kwargs)
            return fit_with_plan(fit, trainer, train_data, self.run, self.plan, args, kwargs)
        finally:
            self.run.train_seconds += time.perf_counter() - start + self._build_seconds
            self._build_seconds = 0.0

    def epoch_trained(self, seconds: float) -> None:
        self.run.epoch_seconds.append(seconds)

    def evaluated(self, seconds: float) -> None:
        self.run.eval_seconds.append(seconds)


def fit_with_plan(fit, trainer, train_data, run: Run, plan: Plan, args, kwargs) -> tuple:
    """RecBole's ``fit`` from the last checkpoint where ``plan.resume`` finds one of this config,
    writing that checkpoint after every validated epoch and stopping at the time budget."""
    # here, not in __init__: mixins (plugin_trainer.OwnCheckpointFile) rename the file after Trainer's
    trainer.saved_model_file = str(plan.best)
    if plan.resume and plan.last.is_file():
        state = resume(trainer, train_data, run, plan)
        if state.get("finished") and not budget_allows_more(state, plan):
            return trainer.best_valid_score, trainer.best_valid_result
    else:
        for path in (plan.best, plan.last):  # a fresh run: nothing of an earlier one is read
            path.unlink(missing_ok=True)
    plan.best.parent.mkdir(parents=True, exist_ok=True)
    started, trained_before = time.perf_counter(), run.train_seconds
    first_epoch = trainer.start_epoch

    callback = kwargs.pop("callback_fn", None)

    def after_epoch(epoch: int, valid_score: float) -> None:
        run.valid_scores.append(float(valid_score))
        if callback is not None:
            callback(epoch, valid_score)
        spent = trained_before + time.perf_counter() - started
        mean_epoch = (time.perf_counter() - started) / (epoch + 1 - first_epoch)
        over_budget = plan.time_budget is not None and spent + mean_epoch > plan.time_budget
        stopping = trainer.cur_step > trainer.stopping_step or epoch + 1 >= trainer.epochs
        run.budget_stopped = over_budget and not stopping
        save_last(trainer, train_data, run, plan.last, epoch, stopping or over_budget, spent)
        if run.budget_stopped:
            raise _BudgetSpent

    try:  # RecBole calls callback_fn after each validation and the best checkpoint's saving
        return fit(train_data, *args, callback_fn=after_epoch, **kwargs)
    except _BudgetSpent:  # RecBole's test then loads the best checkpoint, as after early stopping
        return trainer.best_valid_score, trainer.best_valid_result


def budget_allows_more(state: dict, plan: Plan) -> bool:
    """A run the budget stopped continues when this sitting's budget leaves room for one more
    epoch (a later ``--resume`` with a larger ``--time-budget``, or none)."""
    if not state["budget_stopped"]:
        return False  # early stopping or the last epoch ended it
    epochs = state["epoch_seconds"]
    mean_epoch = sum(epochs) / len(epochs) if epochs else 0.0
    return plan.time_budget is None or state["train_seconds"] + mean_epoch <= plan.time_budget


def save_last(
    trainer, train_data, run: Run, path: Path, epoch: int, finished: bool, spent: float
) -> None:
    """RecBole's checkpoint (the keys ``resume_checkpoint`` reads) plus what makes the resumed
    epochs equal to uninterrupted ones: the random states (dropout, negative sampling, the
    train loader's shuffle) and the run's bookkeeping. Written atomically."""
    state = {
        "config": trainer.config,
        "epoch": epoch,
        "cur_step": trainer.cur_step,
        "best_valid_score": trainer.best_valid_score,
        "best_valid_result": dict(trainer.best_valid_result or {}),
        "state_dict": trainer.model.state_dict(),
        "other_parameter": trainer.model.other_parameter(),
        "optimizer": trainer.optimizer.state_dict(),
        "bench": {
            "config": run.config,
            "finished": finished,
            "budget_stopped": run.budget_stopped,
            "train_seconds": spent,
            "epoch_seconds": list(run.epoch_seconds),
            "valid_scores": list(run.valid_scores),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "loader_rng": train_data.generator.get_state(),
        },
    }
    temporary = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save(state, temporary, pickle_protocol=4)
    os.replace(temporary, path)


def resume(trainer, train_data, run: Run, plan: Plan) -> dict:
    """Load the last checkpoint through RecBole's ``resume_checkpoint`` when it was written for
    this run's effective config (else start afresh); returns its bookkeeping."""
    from recbole_llmemf.utils.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(str(plan.last), map_location="cpu")
    state = checkpoint["bench"]
    if state["config"] != run.config:
        differs = differing_keys(run.config, state["config"])
        print(
            f"[llmemf-bench] {run.label} seed {run.seed}: {plan.last.name} was written with other "
            f"values of {differs}; training from the first epoch",
            flush=True,
        )
        plan.last.unlink()
        plan.best.unlink(missing_ok=True)
        return {}
    trainer.resume_checkpoint(str(plan.last))  # model, optimizer, epoch, early-stopping state
    trainer.saved_model_file = str(plan.best)  # resume_checkpoint points it at the file it read
    trainer.best_valid_result = checkpoint["best_valid_result"] or None
    run.resumed_from_epoch = trainer.start_epoch
    run.budget_stopped = state["budget_stopped"]
    run.train_seconds += state["train_seconds"]
    run.epoch_seconds[:0] = state["epoch_seconds"]
    run.valid_scores[:0] = state.get("valid_scores", [])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    train_data.generator.set_state(state["loader_rng"])
    return state


def checkpoint_moved_on(checkpoint: Path, trained: Run) -> str:
    """Why ``checkpoint`` is not the one ``trained`` was tested with ('' where it is): a run
    continued after its row was written (a budget-stopped run resumed, say) keeps its best
    checkpoint in the same file, so a retest would silently pair the row with another epoch."""
    from recbole_llmemf.utils.checkpoint import load_checkpoint

    if not trained.valid_scores:
        return ""
    # RecBole validates after every eval_step-th epoch: validation i follows epoch (i+1)*step - 1
    step = int(trained.config.get("eval_step", 1))
    best = (best_epoch_index(trained.valid_scores) + 1) * step - 1
    saved = load_checkpoint(str(checkpoint), map_location="cpu")
    if saved["epoch"] == best:
        return ""
    return (
        f"{checkpoint.name} holds epoch {saved['epoch'] + 1} (validation "
        f"{saved['best_valid_score']:.4f}), but the row it would be paired with was tested at "
        f"epoch {best + 1} ({max(trained.valid_scores):.4f}): the run has gone on since; retest "
        "once it has finished"
    )
