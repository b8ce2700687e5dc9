"""llmemf-bench: six models through RecBole's pipeline, results as markdown, JSON and PNG."""

from __future__ import annotations

import json

from recbole_llmemf.bench import ABLATIONS, main

SMALL = [
    "hidden_size=16",
    "inner_size=16",
    "embedding_size=16",
    "state=WARNING",
    "train_batch_size=64",
    "MAX_ITEM_LIST_LENGTH=8",
]
SIX = ["LLMEMF", "SASRec", "GRU4Rec", "SRGNN", "BPR", "ItemKNN"]


def test_bench_writes_tables_json_and_chart_and_reports_failures(tiny_dataset, tmp_path, capsys):
    code = main(
        [
            "--dataset=tiny",
            f"--data-path={tiny_dataset.data_path}",
            "--epochs=1",
            "--models=" + ",".join(SIX + ["NoSuchModel"]),
            "--seeds=1,2",
            f"--out={tmp_path / 'results'}",
            "--set",
            *SMALL,
        ]
    )
    assert code == 0
    stem = tmp_path / "results" / "tiny-full"
    report = stem.with_suffix(".md").read_text()
    assert "protocol `full`" in report and "### Movie" in report and "### Book" in report
    for model in SIX:
        assert f"| {model} | " in report
    assert "NoSuchModel" in report and "failed: ValueError: Unknown model 'NoSuchModel'" in report
    assert report.count("**") >= 2 * 6 * 2, "a best value marked per column and domain"

    results = json.loads(stem.with_suffix(".json").read_text())
    assert results["protocol"] == "full"
    assert {run["label"] for run in results["runs"]} == set(SIX) | {"NoSuchModel"}
    for run in results["runs"]:
        if run["label"] in SIX:
            assert run["status"] == "ok" and len(run["epoch_seconds"]) == 1
            assert 0 < run["test_result"]["Movie/fullmrr"] <= 1
    two_seeds = results["summary"]["SASRec"]["Book/fullmrr"]
    assert len(two_seeds) == 2 and two_seeds[1] >= 0  # mean, std over seeds 1 and 2
    assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| LLMEMF |" in capsys.readouterr().out


def bench(tiny_dataset, out, *options):
    return main(
        ["--dataset=tiny", f"--data-path={tiny_dataset.data_path}", "--epochs=1", f"--out={out}"]
        + list(options)
        + ["--set", *SMALL]
    )


def test_bench_ablation_runs_are_labelled_llmemf_variants(tiny_dataset, tmp_path):
    assert bench(tiny_dataset, tmp_path, "--models=", "--ablations") == 0
    runs = json.loads((tmp_path / "tiny-full.json").read_text())["runs"]
    assert {run["label"]: run["status"] for run in runs} == dict.fromkeys(ABLATIONS, "ok")

    for path in (tiny_dataset.data_path / "tiny").glob("tiny.itememb_txtraw*"):
        path.unlink()  # the text file and its binary copy
    assert bench(tiny_dataset, tmp_path, "--models=LLMEMF-text,LLMEMF-ids") == 0
    runs = json.loads((tmp_path / "tiny-full.json").read_text())["runs"]
    assert [run["status"] for run in runs] == ["failed", "ok"]
    assert "tiny.itememb_txtraw: feature file not found" in runs[0]["error"]
