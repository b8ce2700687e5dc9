"""Time to a converged model, from the benchmark's own records: per run of ``llmemf-bench`` JSON
files, the validation curve, the training (and validation) seconds to its best epoch and to a
target score, and the ratios over a reference run's time to its best.

    python benchmarks/time_to_best.py results/food_kitchen-sasrec-lr0.003-sampled999.json \\
        results/conv-lr003.json --reference SASRec --target 0.0887 --within 0.01

``--target S --within F`` counts the time until a run's validation score first reaches
``S * (1 - F)`` (issue 28: within 1 % of the exact-loss LLMEMF's converged best, 0.0887). Seconds
are the run's own epoch timings (``epoch_seconds``, ``eval_seconds`` of the JSON), so runs made at
different times compare only as far as the machine's load did not change between them.
"""

from __future__ import annotations

import argparse
import json
from itertools import accumulate
from pathlib import Path


def load_runs(paths: list[Path]) -> list[dict]:
    runs = []
    for path in paths:
        for run in json.loads(path.read_text(encoding="utf-8"))["runs"]:
            if run.get("valid_scores"):
                runs.append({**run, "file": path.name})
    return runs


def timeline(run: dict) -> list[tuple[float, float, float]]:
    """Per epoch: (validation score, training s so far, training + validation s so far)."""
    train = list(accumulate(run["epoch_seconds"]))
    evals = run.get("eval_seconds") or []
    both = list(
        accumulate(
            t + (evals[i] if i < len(evals) else 0.0) for i, t in enumerate(run["epoch_seconds"])
        )
    )
    return list(zip(run["valid_scores"], train, both))


def to_best(run: dict) -> tuple[int, float, float, float]:
    """(best epoch, its score, training s, training + validation s) up to the best epoch."""
    points = timeline(run)
    best = max(range(len(points)), key=lambda i: points[i][0])  # the first best, as RecBole keeps
    return best + 1, *points[best]


def to_score(run: dict, score: float) -> tuple[int, float, float] | None:
    """(epoch, training s, training + validation s) when validation first reaches ``score``."""
    for epoch, (value, train, both) in enumerate(timeline(run), 1):
        if value >= score:
            return epoch, train, both
    return None


def report(
    runs: list[dict], reference: str | None, target: float | None, within: float, seconds: bool
) -> str:
    lines = [
        "| file | run | epochs | best epoch | best validation | s training to best | "
        "s with validation | to target: epoch, s | curve |",
        "|" + "---|" * 9,
    ]
    ref = next((run for run in runs if run["label"] == reference), None)
    ref_seconds = to_best(ref)[2] if ref else None
    threshold = target * (1 - within) if target else None
    ratios = []
    for run in runs:
        epoch, score, train, both = to_best(run)
        reached = to_score(run, threshold) if threshold else None
        reach = f"{reached[0]}, {reached[1]:.0f}" if reached else "not reached"
        curve = " ".join(
            f"{value:.4f} [{train:.0f} s]" if seconds else f"{value:.4f}"
            for value, train, _ in timeline(run)
        )
        lines.append(
            f"| {run['file']} | {run['label']} seed {run['seed']} | {len(run['valid_scores'])} | "
            f"{epoch} | {score:.4f} | {train:.0f} | {both:.0f} | {reach} | {curve} |"
        )
        if ref_seconds and run is not ref:
            ratios.append(
                f"{run['label']} ({run['file']}): to its best {train / ref_seconds:.2f}x"
                + (f", to {threshold:.4f} {reached[1] / ref_seconds:.2f}x" if reached else "")
            )
    if ref_seconds:
        lines += ["", f"Training time over {reference}'s to its best ({ref_seconds:.0f} s):"]
        lines += [f"- {ratio}" for ratio in ratios]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "files", nargs="+", type=Path, help="llmemf-bench JSON files (results/*.json)"
    )
    parser.add_argument(
        "--reference", help="label of the run whose time to its best the ratios divide by"
    )
    parser.add_argument("--target", type=float, help="a validation score to time every run to")
    parser.add_argument(
        "--within", type=float, default=0.01, help="share below --target that counts (default 0.01)"
    )
    parser.add_argument(
        "--seconds",
        action="store_true",
        help="after each validation score, the training seconds up to that epoch",
    )
    parser.add_argument("--labels", help="comma-separated labels to keep (default: all)")
    args = parser.parse_args(argv)
    runs = load_runs(args.files)
    if args.labels:
        keep = set(args.labels.split(","))
        runs = [run for run in runs if run["label"] in keep]
    if not runs:
        raise SystemExit("time_to_best: no run with a validation curve in these files")
    print(report(runs, args.reference, args.target, args.within, args.seconds))


if __name__ == "__main__":
    main()
