"""What ``llmemf-bench`` writes: each label's mean and std over seeds, the paired tests against
the LLMEMF row, the markdown tables (metrics per domain, cost, convergence), the JSON, the rank of
every test case per run (``.cases.npz``, which ``--resume`` and the item groups (groups.py)
read back) and the bar chart."""

from __future__ import annotations

import datetime
import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recbole_llmemf.bench.groups import content_items, group_lines, group_table
from recbole_llmemf.bench.significance import TESTED, compare, holm
from recbole_llmemf.data.fileformat.atomic import atomic_write

if TYPE_CHECKING:
    from recbole_llmemf.bench.records import Run

METRICS = ("fullmrr", "ndcg@5", "ndcg@10", "hit@1", "hit@5", "hit@10")
METRIC_LABELS = dict(zip(METRICS, ("MRR", "NDCG@5", "NDCG@10", "Hit@1", "Hit@5", "Hit@10")))


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
            "seeds": len(ok),
            "failed": [r.error for r in mine if r.error],
            "budget_stopped": sum(run.budget_stopped for run in ok),
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
            row["train_seconds"] = statistics.mean(run.train_seconds for run in ok)
            row.update(convergence([run for run in ok if run.valid_scores]))
        table[label] = row
    return table


def best_epoch_index(valid_scores: list[float]) -> int:
    """The epoch (from 0) whose checkpoint RecBole keeps: the last of equal best scores, as its
    ``early_stopping`` takes a tie for an improvement."""
    return len(valid_scores) - 1 - valid_scores[::-1].index(max(valid_scores))


def convergence(runs: list[Run]) -> dict:
    """Means over ``runs`` of the best validation epoch (from 1, see ``best_epoch_index``), its
    score and the training seconds up to it."""
    if not runs:
        return {}
    best = [best_epoch_index(run.valid_scores) for run in runs]
    return {
        "best_epoch": statistics.mean(b + 1 for b in best),
        "best_valid": statistics.mean(max(run.valid_scores) for run in runs),
        "seconds_to_best": statistics.mean(
            sum(run.epoch_seconds[: b + 1]) for run, b in zip(runs, best)
        ),
    }


SIGNIFICANCE_NOTE = (
    "† : differs from the LLMEMF row (or, without one, the LLMEMF variant with the best "
    "validation score) with p < 0.05, paired t-test over the same test cases on the per-case "
    "reciprocal rank (MRR) or NDCG@10, each case's value averaged over the seeds first; under "
    "each table the p-values Holm-adjusted over that table's tests."
)


def reference_label(table: dict, key: str) -> str | None:
    """The row every other is tested against: the full model ``LLMEMF``, or else the LLMEMF
    variant with the best validation score. Never chosen by test score, which would pick the
    luckiest variant and inflate its p-values."""
    llmemf = [label for label, row in table.items() if row["model"] == "LLMEMF" and key in row]
    if "LLMEMF" in llmemf:
        return "LLMEMF"
    return max(llmemf, key=lambda label: table[label].get("best_valid", 0.0), default=None)


def add_significance(table: dict, runs: list[Run], domains: list[str]) -> None:
    """Per domain, each row against the reference row: ``row["significance"][domain]``."""
    for domain in domains:
        reference_row = reference_label(table, f"{domain}/fullmrr")
        reference = [
            r.cases[domain] for r in runs if r.label == reference_row and domain in r.cases
        ]
        for label, row in table.items():
            mine = [r.cases[domain] for r in runs if r.label == label and domain in r.cases]
            if label == reference_row or not mine or not reference:
                continue
            row.setdefault("significance", {})[domain] = {
                "against": reference_row,
                **compare(reference, mine),
            }
        adjust_per_table(table, domain)


def adjust_per_table(table: dict, domain: str) -> None:
    """Holm over the domain's table (every row against the reference, MRR and NDCG@10):
    ``<metric>_p_holm`` beside each ``<metric>_p``."""
    tests = [
        row["significance"][domain]
        for row in table.values()
        if domain in row.get("significance", {})
    ]
    family = [(test, metric) for test in tests for metric in TESTED]
    adjusted = holm([test[f"{metric}_p"] for test, metric in family])
    for (test, metric), p_value in zip(family, adjusted):
        test[f"{metric}_p_holm"] = p_value


def holm_line(table: dict, domain: str) -> list[str]:
    """The md line of the domain's Holm-adjusted p-values, where the table has tests."""
    parts = [
        f"{label} {METRIC_LABELS[metric]} {test[f'{metric}_p_holm']:.2g}"
        for label, row in table.items()
        for test in [row.get("significance", {}).get(domain)]
        if test
        for metric in TESTED
    ]
    if not parts:
        return []
    return [f"Holm-adjusted p over this table's {len(parts)} tests: " + ", ".join(parts) + ".", ""]


def markdown(
    table: dict, runs: list[Run], domains: list[str], header: str, groups: dict | None = None
) -> str:
    lines = [header, ""]
    for domain in domains:
        keys = [f"{domain}/{m}" for m in METRICS]
        best = {
            k: max((row[k][0] for row in table.values() if k in row), default=None) for k in keys
        }
        lines += [
            f"### {domain}",
            "",
            "| model | n | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + " |",
            "|---|---:|" + "---:|" * len(METRICS),
        ]
        for label, row in table.items():
            tests = row.get("significance", {}).get(domain, {})
            cells = [
                _cell(row, k, best[k]) + ("†" if tests.get(f"{m}_p", 1.0) < 0.05 else "")
                for m, k in zip(METRICS, keys)
            ]
            lines.append(f"| {label} | {row['seeds']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += holm_line(table, domain)
    if groups:
        lines += group_lines(groups)
    lines += [
        "### Cost",
        "",
        "| model | s / train epoch | epochs | s training, all | s / test evaluation | status |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, row in table.items():
        status = "ok" if not row["failed"] else "failed: " + "; ".join(row["failed"])[:200]
        if row["budget_stopped"]:
            status += f" ({row['budget_stopped']} of {row['seeds']} stopped by --time-budget)"
        if "epoch_seconds" in row:
            lines.append(
                f"| {label} | {row['epoch_seconds']:.2f} | {count(row['epochs'])} | "
                f"{row['train_seconds']:.2f} | {row['test_eval_seconds']:.2f} | {status} |"
            )
        else:
            lines.append(f"| {label} | - | - | - | - | {status} |")
    return "\n".join(lines + convergence_lines(table, runs)) + "\n"


def count(value: float) -> str:
    """An epoch count: ``23`` for one seed, ``22.5`` for a mean over seeds."""
    return f"{value:.1f}".removesuffix(".0")


def convergence_lines(table: dict, runs: list[Run]) -> list[str]:
    rows = {label: row for label, row in table.items() if "best_epoch" in row}
    if not rows:
        return []
    lines = [
        "",
        "### Convergence",
        "",
        "Validation (the protocol's `valid_metric`, target domain) after every epoch; training "
        "seconds are the epochs' own, up to and including the best one.",
        "",
        "| model | epochs trained | best epoch | validation score there | s training to best epoch |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in rows.items():
        lines.append(
            f"| {label} | {count(row['epochs'])} | {count(row['best_epoch'])} | "
            f"{row['best_valid']:.4f} | {row['seconds_to_best']:.0f} |"
        )
    lines += ["", "Validation score after each epoch (the best in bold):", ""]
    for run in runs:
        if run.label in rows and run.status == "ok" and run.valid_scores:
            best = best_epoch_index(run.valid_scores)
            scores = [
                f"**{v:.4f}**" if i == best else f"{v:.4f}" for i, v in enumerate(run.valid_scores)
            ]
            lines.append(f"- {run.label}, seed {run.seed}: {' '.join(scores)}")
    return lines


def _cell(row: dict, key: str, best: float | None) -> str:
    if key not in row:
        return "failed"
    mean, std = row[key]
    text = f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std else "")
    return f"**{text}**" if best is not None and mean == best else text


def bar_chart(table: dict, runs: list[Run], domains: list[str], path: Path, title: str) -> None:
    """Per domain, MRR and NDCG@10 bars; then each run's validation curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label for label, row in table.items() if "fullmrr" in row]
    fig, axes = plt.subplots(1, len(domains) + 1, figsize=(5 * len(domains) + 5, 4), squeeze=False)
    curves = axes[0][-1]
    for run in runs:
        if run.valid_scores:
            curves.plot(range(1, len(run.valid_scores) + 1), run.valid_scores, label=run.label)
    curves.set_title("validation")
    curves.set_xlabel("epoch")
    curves.legend(fontsize="small")
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


def case_key(label: str, seed: int, domain: str, column: str) -> str:
    return f"{label}|{seed}|{domain}|{column}"


def write_cases(path: Path, runs: list[Run]) -> None:
    arrays = {
        case_key(run.label, run.seed, domain, column): values
        for run in runs
        for domain, table in run.cases.items()
        for column, values in table.items()
    }
    with atomic_write(path, "wb") as file:
        np.savez_compressed(file, **arrays)


def read_cases(path: Path) -> dict[tuple[str, int], dict]:
    if not path.is_file():
        return {}
    cases: dict = {}
    with np.load(path, allow_pickle=False) as arrays:
        for key in arrays.files:
            label, seed, domain, column = key.rsplit("|", 3)
            run = cases.setdefault((label, int(seed)), {})
            run.setdefault(domain, {})[column] = arrays[key]
    return cases


def retest_note(runs: list[Run]) -> str:
    trained = sorted({run.trained_under for run in runs if run.trained_under})
    if not trained:
        return ""
    return (
        f" The models were trained, and early-stopped on validation, under `{'`, `'.join(trained)}`"
        " (`--retest-from`): only the test is this protocol's; epochs and training time are "
        "that training's."
    )


def write_files(
    out: Path, stem: str, runs: list[Run], dataset_dir: Path, protocol: str, settings: str
) -> None:
    """``<stem>.md``, ``.json``, ``.cases.npz`` and ``.png`` of ``runs`` in ``out``; ``settings``
    is the line of hyper-parameters under the header."""
    table, domains = aggregate(runs), domains_of(runs)
    dataset = dataset_dir.name
    add_significance(table, runs, domains)
    # the groups' tests: against the reference row, or the first row where there is none
    reference = domains and (reference_label(table, f"{domains[0]}/fullmrr") or next(iter(table)))
    groups = group_table(runs, content_items(dataset_dir), reference) if reference else {}
    protocol_text = {
        "full": "full ranking within the target domain",
        "sampled999": "999 sampled negatives from the target domain (C2DSR)",
    }
    seeds = ",".join(str(seed) for seed in sorted({run.seed for run in runs}))
    commands = "; ".join(f"`llmemf-bench {c}`" for c in dict.fromkeys(r.command for r in runs) if c)
    commands = f" Commands: {commands}." if commands else ""  # none: rows from another script
    header = (
        f"## {dataset}: test metrics (%), protocol `{protocol}` "
        f"({protocol_text.get(protocol, protocol)})\n\n"
        f"Seeds {seeds}; mean ± std where several (column n: the seeds a row has). "
        f"Best per column in bold. {SIGNIFICANCE_NOTE} "
        f"{datetime.date.today()}.{commands}"
        f"{retest_note(runs)}\n\n"
        f"{settings}"
    )
    with atomic_write(out / f"{stem}.md") as file:
        file.write(markdown(table, runs, domains, header, groups))
    with atomic_write(out / f"{stem}.json") as file:
        json.dump(
            {
                "dataset": dataset,
                "protocol": protocol,
                "seeds": seeds,
                "date": str(datetime.date.today()),
                "summary": table,
                "groups": groups,
                "runs": [run.record() for run in runs],
            },
            file,
            indent=1,
        )
    write_cases(out / f"{stem}.cases.npz", runs)
    if domains:
        bar_chart(table, runs, domains, out / f"{stem}.png", f"{dataset} ({protocol})")
