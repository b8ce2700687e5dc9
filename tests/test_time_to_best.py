"""benchmarks/time_to_best.py: times to the best epoch and to a target score, from bench JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "time_to_best.py"
spec = importlib.util.spec_from_file_location("time_to_best", SCRIPT)
time_to_best = importlib.util.module_from_spec(spec)
spec.loader.exec_module(time_to_best)


def run(label: str, epochs: list[float], scores: list[float], evals: list[float]) -> dict:
    return {
        "label": label,
        "seed": 1,
        "epoch_seconds": epochs,
        "valid_scores": scores,
        "eval_seconds": evals,
    }


def test_times_to_the_first_best_and_to_a_share_of_the_target(tmp_path, capsys):
    runs = [
        run("SASRec", [100, 100, 100], [0.10, 0.30, 0.20], [5, 5, 5]),
        run("LLMEMF", [50, 60, 70, 80], [0.20, 0.297, 0.31, 0.31], [10, 10, 10, 10]),
        {"label": "BPR", "seed": 1, "epoch_seconds": [], "valid_scores": []},  # no curve: left out
    ]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"runs": runs}))
    loaded = time_to_best.load_runs([path])
    assert [r["label"] for r in loaded] == ["SASRec", "LLMEMF"]
    assert time_to_best.to_best(loaded[1]) == (3, 0.31, 180, 210)  # the first of two equal bests
    assert time_to_best.to_score(loaded[1], 0.30 * 0.99) == (2, 110, 130)
    assert time_to_best.to_score(loaded[0], 0.31) is None

    time_to_best.main([str(path), "--reference", "SASRec", "--target", "0.30", "--seconds"])
    printed = capsys.readouterr().out
    assert (
        "LLMEMF (bench.json): to its best 0.90x, to 0.2970 0.55x" in printed
    )  # 180 / 200, 110 / 200
    assert "0.2970 [110 s]" in printed and "not reached" not in printed.split("LLMEMF seed")[1]
