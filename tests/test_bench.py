"""llmemf-bench: six models through RecBole's pipeline, results as markdown, JSON and PNG."""

from __future__ import annotations

import json

from recbole_llmemf.bench import ABLATIONS, SHARED, main

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


def test_bench_shares_hyper_parameters_unless_set_per_model_and_records_them(
    tiny_dataset, tmp_path
):
    options = ["--models=SASRec,SASRec-indomain,GRU4Rec-indomain,BPR", "--set"]
    options += [*SMALL, "learning_rate=0.01", "SASRec.hidden_size=32", "BPR.embedding_size=8"]
    assert (
        main(
            ["--dataset=tiny", f"--data-path={tiny_dataset.data_path}", "--epochs=1"]
            + [f"--out={tmp_path}"]
            + options
        )
        == 0
    )
    results = json.loads((tmp_path / "tiny-full.json").read_text())
    runs = {run["label"]: run for run in results["runs"]}
    assert {label: run["status"] for label, run in runs.items()} == dict.fromkeys(runs, "ok")
    config = {label: run["config"] for label, run in runs.items()}
    for label in runs:  # every model: the global --set values, the shared defaults, the protocol's
        assert config[label]["learning_rate"] == 0.01 and config[label]["epochs"] == 1
        assert config[label]["stopping_step"] == SHARED["stopping_step"]
        assert config[label]["hidden_dropout_prob"] == SHARED["hidden_dropout_prob"]
    assert config["SASRec"]["hidden_size"] == config["SASRec-indomain"]["hidden_size"] == 32
    assert config["GRU4Rec-indomain"]["hidden_size"] == 16
    assert config["GRU4Rec-indomain"]["dropout_prob"] == SHARED["dropout_prob"]
    assert config["BPR"]["embedding_size"] == 8
    assert config["SASRec-indomain"]["train_in_target_domain"] is True
    assert "train_in_target_domain" not in config["SASRec"]
    assert results["summary"]["BPR"]["config"] == config["BPR"]
    report = (tmp_path / "tiny-full.md").read_text()
    assert (
        "Every model: embedding_size=16, hidden_size=16, inner_size=16, dropout_prob=0.3" in report
    )
    assert "per model: SASRec.hidden_size=32, BPR.embedding_size=8." in report
