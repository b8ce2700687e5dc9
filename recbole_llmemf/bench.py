"""``llmemf-bench``: LLMEMF and RecBole's baselines side by side, per domain, on identical terms.

Every model goes through RecBole's own ``run_recbole`` with the same dataset, split, protocol yaml
(candidates, metrics, early stopping) and extra config; only the model name (and, for the ablation,
LLMEMF's modality switches) differs. Writes ``<out>/<dataset>-<protocol>.md`` (tables), ``.json``
(everything, per run) and ``.png`` (bar chart). A model that fails is reported with its error.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
import statistics
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recbole.trainer import Trainer

from llmemf_cli.parsers import build_bench_parser as build_parser
from recbole_llmemf.cli import recbole_argv
from recbole_llmemf.dataset_tools._io import atomic_write
from recbole_llmemf.errors import DataError, reports_data_errors
from recbole_llmemf.evaluation import DomainAwareEvaluation
from recbole_llmemf.features import FeatureFileError

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
METRICS = ("fullmrr", "ndcg@5", "ndcg@10", "hit@1", "hit@5", "hit@10")
METRIC_LABELS = dict(zip(METRICS, ("MRR", "NDCG@5", "NDCG@10", "Hit@1", "Hit@5", "Hit@10")))
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
def stopwatch(run: Run) -> Iterator[None]:
    """Time RecBole's training epochs and our (outer) evaluations while ``run`` trains, and record
    the effective config the trainer is built with."""
    train_epoch, evaluate, init = (
        Trainer._train_epoch,
        DomainAwareEvaluation.evaluate,
        Trainer.__init__,
    )

    @functools.wraps(init)
    def recording_init(trainer, config, model):
        run.config = effective_config(config, run.config)
        init(trainer, config, model)

    Trainer._train_epoch = _timed(train_epoch, run.epoch_seconds)
    DomainAwareEvaluation.evaluate = _timed(evaluate, run.eval_seconds)
    Trainer.__init__ = recording_init
    try:
        yield
    finally:
        Trainer._train_epoch, DomainAwareEvaluation.evaluate = train_epoch, evaluate
        Trainer.__init__ = init


def effective_config(config, asked: dict) -> dict:
    """The final value of every shared key, every key asked for and every key of the model's yaml."""
    keys = list(SHARED) + [k for k in asked if k not in SHARED]
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


def run_one(label: str, model: str, dataset: str, config: dict, config_files: list[str]) -> Run:
    from recbole.quick_start import run_recbole

    run = Run(label, model, config["seed"], config=config)
    try:
        with stopwatch(run):
            result = run_recbole(
                model=model,
                dataset=dataset,
                config_dict=config,
                config_file_list=config_files or None,
            )
        run.test_result = {k: float(v) for k, v in result["test_result"].items()}
    except FeatureFileError as error:  # a file only some variants read: the others still run
        run.status, run.error = "failed", str(error)
    except DataError:  # data every model reads: stop, with its message
        raise
    except Exception as error:  # a failed model is reported; the others still run
        run.status, run.error = "failed", f"{type(error).__name__}: {error}"
        logging.getLogger(__name__).error(traceback.format_exc())
    return run


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


def domains_of(runs: list[Run]) -> list[str]:
    keys = [k for run in runs for k in run.test_result if k.count("/") == 1]
    return list(dict.fromkeys(key.split("/")[0] for key in keys))


def aggregate(runs: list[Run]) -> dict[str, dict]:
    """Per label: mean and std over seeds of every result key, timings, status."""
    table = {}
    for label in dict.fromkeys(run.label for run in runs):
        mine = [run for run in runs if run.label == label]
        ok = [run for run in mine if run.status == "ok"]
        row = {
            "model": mine[0].model,
            "runs": len(mine),
            "failed": [r.error for r in mine if r.error],
            "config": mine[0].config,
        }
        if ok:
            for key in ok[0].test_result:
                values = [run.test_result[key] for run in ok]
                row[key] = (
                    statistics.mean(values),
                    statistics.stdev(values) if len(values) > 1 else 0.0,
                )
            epochs = [s for run in ok for s in run.epoch_seconds]
            row["epoch_seconds"] = statistics.mean(epochs) if epochs else float("nan")
            row["epochs"] = statistics.mean(len(run.epoch_seconds) for run in ok)
            row["test_eval_seconds"] = statistics.mean(run.eval_seconds[-1] for run in ok)
        table[label] = row
    return table


def markdown(table: dict, domains: list[str], header: str) -> str:
    lines = [header, ""]
    for domain in domains:
        keys = [f"{domain}/{m}" for m in METRICS]
        best = {
            k: max((row[k][0] for row in table.values() if k in row), default=None) for k in keys
        }
        lines += [
            f"### {domain}",
            "",
            "| model | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + " |",
            "|---|" + "---:|" * len(METRICS),
        ]
        for label, row in table.items():
            cells = [_cell(row, k, best[k]) for k in keys]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "### Cost",
        "",
        "| model | s / train epoch | epochs | s / test evaluation | status |",
        "|---|---:|---:|---:|---|",
    ]
    for label, row in table.items():
        status = "ok" if not row["failed"] else "failed: " + "; ".join(row["failed"])[:200]
        if "epoch_seconds" in row:
            lines.append(
                f"| {label} | {row['epoch_seconds']:.2f} | {row['epochs']:.1f} | "
                f"{row['test_eval_seconds']:.2f} | {status} |"
            )
        else:
            lines.append(f"| {label} | - | - | - | {status} |")
    return "\n".join(lines) + "\n"


def _cell(row: dict, key: str, best: float | None) -> str:
    if key not in row:
        return "failed"
    mean, std = row[key]
    text = f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std else "")
    return f"**{text}**" if best is not None and mean == best else text


def bar_chart(table: dict, domains: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label for label, row in table.items() if "fullmrr" in row]
    fig, axes = plt.subplots(1, len(domains), figsize=(5 * len(domains), 4), squeeze=False)
    for ax, domain in zip(axes[0], domains):
        for offset, metric in enumerate(("fullmrr", "ndcg@10")):
            values = [100 * table[label][f"{domain}/{metric}"][0] for label in labels]
            errors = [100 * table[label][f"{domain}/{metric}"][1] for label in labels]
            positions = [i + 0.4 * offset for i in range(len(labels))]
            ax.bar(positions, values, width=0.4, yerr=errors, label=METRIC_LABELS[metric])
        ax.set_xticks([i + 0.2 for i in range(len(labels))], labels, rotation=30, ha="right")
        ax.set_title(domain)
        ax.set_ylabel("%")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as file:
        fig.savefig(file, format="png", dpi=120)
    plt.close(fig)


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
        "show_progress": False,
        **everyone,
    }
    if args.epochs is not None:
        base["epochs"] = args.epochs
    runs = []
    with recbole_argv("llmemf-bench", []):  # RecBole's Config would read our options as its own
        for seed in [int(s) for s in args.seeds.split(",")]:
            for label, model, overrides in model_specs(args.models, args.ablations):
                print(f"[llmemf-bench] {label} seed {seed} ...", flush=True)
                config = model_config(base, per_model, label, model, overrides)
                run = run_one(
                    label, model, args.dataset, {**config, "seed": seed}, args.config_files
                )
                print(f"[llmemf-bench] {label} seed {seed}: {run.status} {run.error}", flush=True)
                runs.append(run)
                write_results(args, runs, command)  # after each run: a crash loses no result
    print(markdown(aggregate(runs), domains_of(runs), f"## {args.dataset} ({args.protocol})"))
    return 0 if any(run.status == "ok" for run in runs) else 1


def config_line(args) -> str:
    """One line: the hyper-parameters every model shares and the per-model exceptions."""
    everyone, per_model = parse_set(args.set)
    shared = {**SHARED, **everyone, **({"epochs": args.epochs} if args.epochs is not None else {})}
    text = "Every model: " + ", ".join(f"{k}={v}" for k, v in shared.items())
    exceptions = [f"{m}.{k}={v}" for m, values in per_model.items() for k, v in values.items()]
    return text + ("; per model: " + ", ".join(exceptions) if exceptions else "") + "."


def write_results(args, runs: list[Run], command: str) -> None:
    out = Path(args.out)
    stem = args.name or f"{args.dataset}-{args.protocol}"
    table, domains = aggregate(runs), domains_of(runs)
    protocol_text = {
        "full": "full ranking within the target domain",
        "sampled999": "999 sampled negatives from the target domain (C2DSR)",
    }
    header = (
        f"## {args.dataset}: test metrics (%), protocol `{args.protocol}` "
        f"({protocol_text.get(args.protocol, args.protocol)})\n\n"
        f"Seeds {args.seeds}; mean ± std where several. Best per column in bold. "
        f"{datetime.date.today()}. Command: `llmemf-bench {command}`\n\n"
        f"{config_line(args)}"
    )
    with atomic_write(out / f"{stem}.md") as file:
        file.write(markdown(table, domains, header))
    with atomic_write(out / f"{stem}.json") as file:
        json.dump(
            {
                "dataset": args.dataset,
                "protocol": args.protocol,
                "seeds": args.seeds,
                "date": str(datetime.date.today()),
                "summary": table,
                "runs": [run.__dict__ for run in runs],
            },
            file,
            indent=1,
        )
    if domains:
        bar_chart(table, domains, out / f"{stem}.png", f"{args.dataset} ({args.protocol})")
