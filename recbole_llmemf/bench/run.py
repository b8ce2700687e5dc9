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

import argparse
import contextlib
import fcntl
import glob
import json
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import torch

from recbole_llmemf.bench.groups import attach_train_counts
from recbole_llmemf.bench.records import RUN_FIELDS, Plan, Run, differing_keys
from recbole_llmemf.bench.report import (
    aggregate,
    domains_of,
    markdown,
    read_cases,
    write_files,
)
from recbole_llmemf.bench.specs import (
    SHARED,
    config_line,
    effective_config,
    effective_config_of,
    model_config,
    model_specs,
    parse_set,
)
from recbole_llmemf.bench.training import RunObserver, checkpoint_moved_on
from recbole_llmemf.data.fileformat.item_vectors import FeatureFileError
from recbole_llmemf.trainer.observer import observing
from recbole_llmemf.utils.argv import recbole_argv
from recbole_llmemf.utils.errors import DataError


def run_one(
    label: str,
    model: str,
    dataset: str,
    config: dict,
    config_files: list[str],
    plan: Plan | None = None,
) -> Run:
    import recbole.model.sequential_recommender  # noqa: F401  see below
    from recbole.quick_start import run_recbole

    # Importing RecBole's sequential models turns anomaly detection on (sine.py L25), which more
    # than doubles a batch: imported first, then off, so no run pays for it, the first one included.
    torch.autograd.set_detect_anomaly(False)
    run = Run(label, model, config["seed"], config=config)
    try:
        with observing(RunObserver(run, plan)) as observer:
            result = run_recbole(
                model=model,
                dataset=dataset,
                config_dict=config,
                config_file_list=config_files or None,
            )
        run.test_result = {k: float(v) for k, v in result["test_result"].items()}
        run.cases = getattr(observer.trainers[-1], "last_cases", {})  # the test's, the last
        if observer.train_dataset is not None:
            attach_train_counts(run.cases, observer.train_dataset)
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
    differs = differing_keys(run.config, trained.config, ignore=("protocol",))
    if differs:
        run.status, run.error = "failed", f"trained with other values of {differs}"
        return run
    try:
        init_seed(built["seed"], built["reproducibility"])
        train_data, _, test_data = data_preparation(built, create_dataset(built))
        network = get_model(model)(built, train_data._dataset).to(built["device"])
        trainer = get_trainer(built["MODEL_TYPE"], model)(built, network)
        with observing(RunObserver(run)):
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
    attach_train_counts(run.cases, train_data._dataset)
    return run


def run(args: argparse.Namespace, command: str) -> int:
    """``llmemf-bench`` (its arguments: llmemf_cli/bench.py); ``command`` is recorded per run."""
    base = base_config(args)
    stem = args.name or f"{args.dataset}-{args.protocol}"
    finished = finished_runs(Path(args.out), stem, args.dataset) if args.resume else {}
    trained = (
        finished_runs(Path(args.out), args.retest_from, args.dataset) if args.retest_from else {}
    )
    asked, per_model = parse_set(args.set)
    runs = []
    with recbole_argv("llmemf-bench", []):  # RecBole's Config would read our options as its own
        for seed in [int(s) for s in args.seeds.split(",")]:
            for label, model, overrides in model_specs(args.models, args.ablations):
                config = model_config(base, per_model, label, model, overrides, asked)
                config["seed"] = seed
                row = one_row(args, command, stem, (label, model, config), finished, trained)
                if row is None:
                    continue
                print(f"[llmemf-bench] {label} seed {seed}: {row.status} {row.error}", flush=True)
                runs.append(row)
                write_results(args, runs)  # after each run: a crash loses no result
                # the JSON holds it now; a budget-stopped run keeps the checkpoint to go on from
                if row.status == "ok" and not row.budget_stopped:
                    checkpoint_plan(args, stem, label, seed).last.unlink(missing_ok=True)
    print(markdown(aggregate(runs), runs, domains_of(runs), f"## {args.dataset} ({args.protocol})"))
    return 0 if any(run.status == "ok" for run in runs) else 1


def base_config(args: argparse.Namespace) -> dict:
    """The config every model of this benchmark starts from."""
    everyone, _ = parse_set(args.set)
    base = {
        **SHARED,
        "data_path": args.data_path,
        "protocol": args.protocol,
        "show_progress": sys.stderr.isatty(),  # a bar inside long epochs on a terminal, not in logs
        **everyone,
    }
    if args.epochs is not None:
        base["epochs"] = args.epochs
    return base


def one_row(args, command: str, stem: str, spec: tuple, finished: dict, trained: dict):
    """The row of ``spec`` (label, model, config): read back, retested, trained, or ``None``
    where a retest's source has no finished run of it or another process trains it now."""
    label, model, config = spec
    seed = config["seed"]
    run = read_back(finished, label, model, args.dataset, config, args.config_files)
    if run is not None and not goes_on(run, args, trained.get((label, seed))):
        print(f"[llmemf-bench] {label} seed {seed}: read back", flush=True)
        return run
    if args.retest_from and (label, seed) not in trained:
        print(
            f"[llmemf-bench] {label} seed {seed}: left out, not finished in {args.retest_from}",
            flush=True,
        )
        return None
    if args.retest_from:
        print(f"[llmemf-bench] {label} seed {seed}: test only", flush=True)
        run = retest_one(label, model, args, config, trained[(label, seed)])
    else:
        plan = checkpoint_plan(args, stem, label, seed)
        # beside the stem's own lock; kept, since removing a lock file races with its next taker
        with claimed(Path(args.out) / f".{stem}.{label}-seed{seed}.lock") as mine:
            if not mine:  # another process (a second lane on this stem) trains it now
                print(f"[llmemf-bench] {label} seed {seed}: trained by another process", flush=True)
                return None
            print(f"[llmemf-bench] {label} seed {seed} ...", flush=True)
            run = run_one(label, model, args.dataset, config, args.config_files, plan)
        run.time_budget = args.time_budget
    run.command = command
    return run


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


def write_results(args, runs: list[Run]) -> None:
    """The md, JSON, cases and chart of ``runs``; with ``--resume``, merged under a lock with the
    runs other benchmarks wrote to the same stem meanwhile (several processes may share one)."""
    out = Path(args.out)
    stem = args.name or f"{args.dataset}-{args.protocol}"
    out.mkdir(parents=True, exist_ok=True)
    with locked(out / f".{stem}.lock"):
        # a writer killed mid-write leaves its temporary file; every writer of the stem holds the
        # lock, so none of these is being written now
        for leftover in out.glob(f"{glob.escape(stem)}.*.tmp"):
            leftover.unlink(missing_ok=True)
        if args.resume:
            runs = merged(finished_runs(out, stem, args.dataset), runs)
        dataset_dir = Path(args.data_path) / args.dataset
        write_files(out, stem, runs, dataset_dir, args.protocol, config_line(args))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


@contextlib.contextmanager
def claimed(path: Path) -> Iterator[bool]:
    """Whether this process holds ``path``'s lock (held until the block ends): one run, one
    trainer, whatever lanes share a results stem."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def merged(saved: dict[tuple[str, int], Run], runs: list[Run]) -> list[Run]:
    """The saved runs in their order, this process's in place of the same (label, seed), then
    this process's new ones."""
    mine = {(run.label, run.seed): run for run in runs}
    return [mine.pop(key, run) for key, run in saved.items()] + list(mine.values())
