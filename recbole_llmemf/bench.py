"""``llmemf-bench``: LLMEMF and RecBole's baselines side by side, per domain, on identical terms.

Every model goes through RecBole's own ``run_recbole`` with the same dataset, split, protocol yaml
(candidates, metrics, early stopping) and extra config; only the model name (and, for the ablation,
LLMEMF's modality switches) differs. Writes ``<out>/<dataset>-<protocol>.md`` (tables), ``.json``
(everything, per run), ``.cases.npz`` (the rank of every test case per run, for the paired tests
of significance.py) and ``.png`` (bar chart), through report.py, after every run. A model that
fails is reported with its error.

Each run trains with fixed checkpoint files, ``<out>/checkpoints/<stem>/<label>-seed<seed>.pth``
(RecBole's best one) and ``...-last.pth`` (after every validated epoch: model, optimizer, early
stopping and random states), so ``--resume`` skips the runs the JSON already holds with the same
effective config and continues an interrupted one through RecBole's ``Trainer.resume_checkpoint``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import random
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from recbole.trainer import Trainer

from llmemf_cli.parsers import build_bench_parser as build_parser
from recbole_llmemf.cli import recbole_argv
from recbole_llmemf.errors import DataError, reports_data_errors
from recbole_llmemf.evaluation import DomainAwareEvaluation
from recbole_llmemf.features import FeatureFileError
from recbole_llmemf.report import (
    aggregate,
    best_epoch_index,
    domains_of,
    markdown,
    read_cases,
    write_files,
)

# One setting for every model (the paper's values), so that no model wins by RecBole's per-model
# defaults (SASRec: hidden 64, dropout 0.5; LLMEMF: 256, 0.3). Global ``--set key=value`` replaces
# one for all models, ``--set SASRec.key=value`` for one model or label. A model reads the keys
# it knows (SASRec: hidden_size, inner_size, hidden/attn dropout; GRU4Rec: embedding_size,
# hidden_size, dropout_prob; BPR: embedding_size); the training keys apply to all.
SHARED = {
    "embedding_size": 256,
    "hidden_size": 256,
    "inner_size": 256,
    "dropout_prob": 0.3,
    "hidden_dropout_prob": 0.3,
    "attn_dropout_prob": 0.3,
    "learning_rate": 0.001,
    "train_batch_size": 256,
    "epochs": 100,
    "stopping_step": 10,
}
# "<Model>-indomain": RecBole's CE sequential model trained with the target domain's softmax only
INDOMAIN = "-indomain"
# The paper's ablation (its table: base, +text, +text+LLM, +visual, full)
ABLATIONS = {
    "LLMEMF-ids": {"use_image": False, "use_text": False},
    "LLMEMF-text": {"use_image": False, "text_feature_suffix": "itememb_txtraw"},
    "LLMEMF-text+LLM": {"use_image": False},
    "LLMEMF-image": {"use_text": False},
    "LLMEMF-full": {},
    # Controls: the same missing pattern, each vector moved to another item (what it says is gone)
    "LLMEMF-text-shuffled": {"use_image": False, "shuffled_modalities": ["text"]},
    "LLMEMF-image-shuffled": {"use_text": False, "shuffled_modalities": ["image"]},
}


@dataclass
class Run:
    label: str
    model: str
    seed: int
    status: str = "ok"
    error: str = ""
    test_result: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # effective values of the keys that set the model
    epoch_seconds: list[float] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)
    # model construction (ItemKNN's similarity build) plus the whole of fit, over all sittings
    train_seconds: float = 0.0
    resumed_from_epoch: int | None = None  # the first epoch this sitting trained, after a resume
    budget_stopped: bool = False
    time_budget: float | None = None  # the --time-budget of the sitting that ended the run
    valid_scores: list[float] = field(default_factory=list)  # valid_metric after every epoch
    trained_under: str = ""  # --retest-from: the protocol of the training and early stopping
    command: str = ""
    # per domain, the test cases (evaluation.case_table); in <stem>.cases.npz, not in the JSON
    cases: dict = field(default_factory=dict, repr=False)

    def record(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "cases"}


RUN_FIELDS = set(Run.__dataclass_fields__)


@dataclass
class Plan:
    """Where a run keeps its checkpoints and how long it may train."""

    best: Path
    last: Path
    resume: bool = False
    time_budget: float | None = None


class _BudgetSpent(Exception):
    """Raised at the end of an epoch when the next one would overrun ``--time-budget``."""


def _timed(function, seconds: list[float]):
    @functools.wraps(function)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    return timed


@contextlib.contextmanager
def stopwatch(run: Run, plan: Plan | None = None) -> Iterator[list]:
    """Time RecBole's training epochs, model construction and fit, and our (outer) evaluations while
    ``run`` trains; record the effective config the trainer is built with; with a ``plan``, give the
    trainer its checkpoint files, resume it and keep its resumable checkpoint after every epoch.
    Yields the list of the trainers built inside."""
    import recbole.quick_start.quick_start as quick_start

    train_epoch, evaluate, init, fit, get_model = (
        Trainer._train_epoch,
        DomainAwareEvaluation.evaluate,
        Trainer.__init__,
        Trainer.fit,
        quick_start.get_model,
    )
    build_seconds: list[float] = []
    trainers: list = []

    @functools.wraps(init)
    def recording_init(trainer, config, model):
        run.config = effective_config(config, run.config)
        init(trainer, config, model)
        trainers.append(trainer)

    @functools.wraps(fit)
    def planned_fit(trainer, train_data, *args, **kwargs):
        if trainer not in trainers:  # a trainer of someone else's
            return fit(trainer, train_data, *args, **kwargs)
        start = time.perf_counter()
        try:
            if plan is None:
                return fit(trainer, train_data, *args, **kwargs)
            return fit_with_plan(fit, trainer, train_data, run, plan, args, kwargs)
        finally:
            run.train_seconds += time.perf_counter() - start + sum(build_seconds)
            build_seconds.clear()

    Trainer._train_epoch = _timed(train_epoch, run.epoch_seconds)
    DomainAwareEvaluation.evaluate = _timed(evaluate, run.eval_seconds)
    Trainer.__init__ = recording_init
    Trainer.fit = planned_fit
    # ItemKNN builds its similarity matrix in its constructor: training time, for the Cost table
    quick_start.get_model = lambda name: _timed(get_model(name), build_seconds)
    try:
        yield trainers
    finally:
        Trainer._train_epoch, DomainAwareEvaluation.evaluate = train_epoch, evaluate
        Trainer.__init__, Trainer.fit = init, fit
        quick_start.get_model = get_model


def fit_with_plan(fit, trainer, train_data, run: Run, plan: Plan, args, kwargs) -> tuple:
    """RecBole's ``fit`` from the last checkpoint where ``plan.resume`` finds one of this config,
    writing that checkpoint after every validated epoch and stopping at the time budget."""
    # here, not in __init__: mixins (registry.OwnCheckpointFile) rename the file after Trainer's
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
        return fit(trainer, train_data, *args, callback_fn=after_epoch, **kwargs)
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
    from recbole_llmemf.compat import load_checkpoint

    checkpoint = load_checkpoint(str(plan.last), map_location="cpu")
    state = checkpoint["bench"]
    if state["config"] != run.config:
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


# Keys that change what a run shows, not what it computes: a run resumed elsewhere still matches.
DISPLAY_KEYS = {"show_progress"}


def effective_config(config, asked: dict) -> dict:
    """The final value of every shared key, every key asked for and every key of the model's yaml."""
    keys = list(SHARED) + [k for k in asked if k not in SHARED and k not in DISPLAY_KEYS]
    keys += [k for k in model_yaml_keys(config["model"]) if k not in keys]
    values = {key: config[key] for key in keys if config[key] is not None}
    return json.loads(json.dumps(values, default=str))


def model_yaml_keys(model: str) -> list[str]:
    import recbole
    import yaml

    from recbole_llmemf.registry import PROPERTIES

    keys = []
    for folder in (Path(recbole.__file__).parent / "properties" / "model", PROPERTIES / "model"):
        path = folder / f"{model}.yaml"
        if path.is_file():
            keys += list(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return keys


def run_one(
    label: str,
    model: str,
    dataset: str,
    config: dict,
    config_files: list[str],
    plan: Plan | None = None,
) -> Run:
    import recbole.model.sequential_recommender  # noqa: F401  see below
    import torch
    from recbole.quick_start import run_recbole

    # Importing RecBole's sequential models turns anomaly detection on (sine.py L25), which more
    # than doubles a batch: imported first, then off, so no run pays for it, the first one included.
    torch.autograd.set_detect_anomaly(False)
    run = Run(label, model, config["seed"], config=config)
    try:
        with stopwatch(run, plan) as trainers:
            result = run_recbole(
                model=model,
                dataset=dataset,
                config_dict=config,
                config_file_list=config_files or None,
            )
        run.test_result = {k: float(v) for k, v in result["test_result"].items()}
        run.cases = getattr(trainers[-1], "last_cases", {})  # the test's, the last evaluation
    except FeatureFileError as error:  # a file only some variants read: the others still run
        run.status, run.error = "failed", str(error)
    except DataError:  # data every model reads: stop, with its message
        raise
    except Exception as error:  # a failed model is reported; the others still run
        run.status, run.error = "failed", f"{type(error).__name__}: {error}"
        logging.getLogger(__name__).error(traceback.format_exc())
    return run


def retest_one(label: str, model: str, args, config: dict, trained: Run) -> Run:
    """``trained``'s best checkpoint tested under ``config``'s protocol through RecBole's own
    ``Trainer.evaluate``: the row keeps the training record (epochs, validation curve, early
    stopping under its protocol) and gets this protocol's test results and per-case ranks."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    run = Run(label, model, config["seed"], config=config)
    checkpoint = checkpoint_plan(args, args.retest_from, label, run.seed).best
    if not checkpoint.is_file():
        run.status, run.error = "failed", f"{checkpoint} is missing"
        return run
    moved_on = checkpoint_moved_on(checkpoint, trained)
    if moved_on:
        run.status, run.error = "failed", moved_on
        return run
    built = Config(
        model, args.dataset, config_file_list=args.config_files or None, config_dict=config
    )
    run.config = effective_config(built, config)
    differs = sorted(
        key
        for key in run.config.keys() | trained.config.keys()
        if key != "protocol" and run.config.get(key) != trained.config.get(key)
    )
    if differs:
        run.status, run.error = "failed", f"trained with other values of {differs}"
        return run
    try:
        init_seed(built["seed"], built["reproducibility"])
        train_data, _, test_data = data_preparation(built, create_dataset(built))
        network = get_model(model)(built, train_data._dataset).to(built["device"])
        trainer = get_trainer(built["MODEL_TYPE"], model)(built, network)
        with stopwatch(run):
            result = trainer.evaluate(test_data, load_best_model=True, model_file=str(checkpoint))
    except DataError:
        raise
    except Exception as error:  # as run_one: reported, and the other runs still go
        run.status, run.error = "failed", f"{type(error).__name__}: {error}"
        logging.getLogger(__name__).error(traceback.format_exc())
        return run
    for key in ("epoch_seconds", "valid_scores", "train_seconds", "budget_stopped"):
        setattr(run, key, getattr(trained, key))
    run.trained_under = trained.config["protocol"]
    run.test_result = {k: float(v) for k, v in result.items()}
    run.cases = trainer.last_cases
    return run


def checkpoint_moved_on(checkpoint: Path, trained: Run) -> str:
    """Why ``checkpoint`` is not the one ``trained`` was tested with ('' where it is): a run
    continued after its row was written (a budget-stopped run resumed, say) keeps its best
    checkpoint in the same file, so a retest would silently pair the row with another epoch."""
    from recbole_llmemf.compat import load_checkpoint

    if not trained.valid_scores:
        return ""
    best = best_epoch_index(trained.valid_scores)
    saved = load_checkpoint(str(checkpoint), map_location="cpu")
    if saved["epoch"] == best:
        return ""
    return (
        f"{checkpoint.name} holds epoch {saved['epoch'] + 1} (validation "
        f"{saved['best_valid_score']:.4f}), but the row it would be paired with was tested at "
        f"epoch {best + 1} ({max(trained.valid_scores):.4f}): the run has gone on since; retest "
        "once it has finished"
    )


def effective_config_of(model: str, dataset: str, config: dict, config_files: list[str]) -> dict:
    """The effective config a run of ``model`` would record, read from RecBole's Config alone."""
    from recbole.config import Config

    built = Config(model, dataset, config_file_list=config_files or None, config_dict=config)
    return effective_config(built, config)


def model_specs(models: str, ablations: bool) -> list[tuple[str, str, dict]]:
    names = [name for name in models.split(",") if name]
    specs = [_spec(name) for name in names]
    if ablations:
        specs += [
            (label, "LLMEMF", overrides)
            for label, overrides in ABLATIONS.items()
            if label not in names and (overrides or "LLMEMF" not in names)  # LLMEMF is the full one
        ]
    return specs


def _spec(label: str) -> tuple[str, str, dict]:
    if label in ABLATIONS:
        return label, "LLMEMF", ABLATIONS[label]
    if label.endswith(INDOMAIN):
        return label, label[: -len(INDOMAIN)], {"train_in_target_domain": True}
    return label, label, {}


def model_config(shared: dict, per_model: dict, label: str, model: str, overrides: dict) -> dict:
    """``shared`` (SHARED with global --set), then the spec's switches, then ``Model.key`` and
    ``label.key`` values from --set, the most specific last."""
    return {**shared, **overrides, **per_model.get(model, {}), **per_model.get(label, {})}


def parse_set(pairs: Sequence[str]) -> tuple[dict, dict]:
    """``KEY=VALUE`` for every model and ``MODEL.KEY=VALUE`` for one model or label."""
    import yaml

    config, per_model = {}, {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"llmemf-bench: --set expects KEY=VALUE, got {pair!r}")
        model, dot, model_key = key.rpartition(".")
        target = per_model.setdefault(model, {}) if dot else config
        target[model_key if dot else key] = yaml.safe_load(value)
    return config, per_model


@reports_data_errors
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    everyone, per_model = parse_set(args.set)
    base = {
        **SHARED,
        "data_path": args.data_path,
        "protocol": args.protocol,
        "show_progress": sys.stderr.isatty(),  # a bar inside long epochs on a terminal, not in logs
        **everyone,
    }
    if args.epochs is not None:
        base["epochs"] = args.epochs
    stem = args.name or f"{args.dataset}-{args.protocol}"
    finished = finished_runs(Path(args.out), stem, args.dataset) if args.resume else {}
    trained = (
        finished_runs(Path(args.out), args.retest_from, args.dataset) if args.retest_from else {}
    )
    runs = []
    with recbole_argv("llmemf-bench", []):  # RecBole's Config would read our options as its own
        for seed in [int(s) for s in args.seeds.split(",")]:
            for label, model, overrides in model_specs(args.models, args.ablations):
                config = {**model_config(base, per_model, label, model, overrides), "seed": seed}
                run = read_back(finished, label, model, args.dataset, config, args.config_files)
                if run is not None and goes_on(run, args, trained.get((label, seed))):
                    run = None
                plan = None
                if run is not None:
                    print(f"[llmemf-bench] {label} seed {seed}: read back", flush=True)
                elif args.retest_from and (label, seed) not in trained:
                    print(
                        f"[llmemf-bench] {label} seed {seed}: left out, not finished in "
                        f"{args.retest_from}",
                        flush=True,
                    )
                    continue
                elif args.retest_from:
                    print(f"[llmemf-bench] {label} seed {seed}: test only", flush=True)
                    run = retest_one(label, model, args, config, trained[(label, seed)])
                    run.command = command
                else:
                    print(f"[llmemf-bench] {label} seed {seed} ...", flush=True)
                    plan = checkpoint_plan(args, stem, label, seed)
                    run = run_one(label, model, args.dataset, config, args.config_files, plan)
                    run.time_budget, run.command = args.time_budget, command
                print(f"[llmemf-bench] {label} seed {seed}: {run.status} {run.error}", flush=True)
                runs.append(run)
                write_results(args, runs)  # after each run: a crash loses no result
                # the JSON holds it now; a budget-stopped run keeps the checkpoint to go on from
                if run.status == "ok" and plan is not None and not run.budget_stopped:
                    plan.last.unlink(missing_ok=True)
    print(markdown(aggregate(runs), runs, domains_of(runs), f"## {args.dataset} ({args.protocol})"))
    return 0 if any(run.status == "ok" for run in runs) else 1


def checkpoint_plan(args, stem: str, label: str, seed: int) -> Plan:
    checkpoints = Path(args.out) / "checkpoints" / stem
    return Plan(
        checkpoints / f"{label}-seed{seed}.pth",
        checkpoints / f"{label}-seed{seed}-last.pth",
        args.resume,
        args.time_budget,
    )


def finished_runs(out: Path, stem: str, dataset: str) -> dict[tuple[str, int], Run]:
    """The successful runs of ``<out>/<stem>.json`` (this dataset; the stem names the protocol),
    with their per-case tables from ``.cases.npz``, by (label, seed)."""
    path = out / f"{stem}.json"
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved.get("dataset") != dataset:
        return {}
    cases = read_cases(out / f"{stem}.cases.npz")
    runs = {}
    for record in saved["runs"]:
        if record["status"] == "ok":  # keys of a newer version's records are left out
            run = Run(**{key: value for key, value in record.items() if key in RUN_FIELDS})
            run.cases = cases.get((run.label, run.seed), {})
            runs[(run.label, run.seed)] = run
    return runs


def read_back(
    finished: dict, label: str, model: str, dataset: str, config: dict, config_files: list[str]
) -> Run | None:
    """The finished run of this label, model and seed when its effective config is this one."""
    run = finished.get((label, config["seed"]))
    if run is None or run.model != model:
        return None
    try:
        effective = effective_config_of(model, dataset, config, config_files)
    except Exception:  # an unknown model or a broken config: run it, and report its error
        return None
    return run if effective == run.config else None


def goes_on(run: Run, args, trained: Run | None) -> bool:
    """Whether a finished row is to be done again rather than read back: a budget-stopped run
    under a larger budget, or a retest whose run trained on since (a retest's row needs no
    checkpoint while its run is unchanged)."""
    if args.retest_from:
        return trained is not None and run.valid_scores != trained.valid_scores
    if not run.budget_stopped:
        return False
    budget = args.time_budget
    return budget is None or (run.time_budget is not None and budget > run.time_budget)


def config_line(args) -> str:
    """One line: the hyper-parameters every model shares and the per-model exceptions."""
    everyone, per_model = parse_set(args.set)
    shared = {**SHARED, **everyone, **({"epochs": args.epochs} if args.epochs is not None else {})}
    text = "Every model: " + ", ".join(f"{k}={v}" for k, v in shared.items())
    exceptions = [f"{m}.{k}={v}" for m, values in per_model.items() for k, v in values.items()]
    return text + ("; per model: " + ", ".join(exceptions) if exceptions else "") + "."


def write_results(args, runs: list[Run]) -> None:
    """The md, JSON, cases and chart of ``runs``; with ``--resume``, merged under a lock with the
    runs other benchmarks wrote to the same stem meanwhile (several processes may share one)."""
    out = Path(args.out)
    stem = args.name or f"{args.dataset}-{args.protocol}"
    out.mkdir(parents=True, exist_ok=True)
    with locked(out / f".{stem}.lock"):
        if args.resume:
            runs = merged(finished_runs(out, stem, args.dataset), runs)
        write_files(out, stem, runs, args.dataset, args.protocol, config_line(args))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def merged(saved: dict[tuple[str, int], Run], runs: list[Run]) -> list[Run]:
    """The saved runs in their order, this process's in place of the same (label, seed), then
    this process's new ones."""
    mine = {(run.label, run.seed): run for run in runs}
    return [mine.pop(key, run) for key, run in saved.items()] + list(mine.values())
