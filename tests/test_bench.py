"""llmemf-bench: six models through RecBole's pipeline, results as markdown, JSON and PNG."""

from __future__ import annotations

import fcntl
import functools
import json
import shutil
import statistics

import numpy as np
import pytest
import torch
import yaml
from conftest import SAMPLED_5
from recbole.trainer import Trainer
from recbole.utils import early_stopping

import recbole_llmemf.bench.run as bench_module
from llmemf_cli.bench import main
from recbole_llmemf.bench.records import Run
from recbole_llmemf.bench.report import best_epoch_index, case_key, read_cases
from recbole_llmemf.bench.significance import per_case_values
from recbole_llmemf.bench.specs import (
    ABLATIONS,
    CONTENT,
    SHARED,
    effective_config_of,
    model_config,
    model_specs,
)
from recbole_llmemf.utils.checkpoint import load_checkpoint

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
    two_seeds = results["summary"]["SASRec"]["Book/fullmrr"]  # mean, std over seeds 1 and 2
    seeds = [r["test_result"]["Book/fullmrr"] for r in results["runs"] if r["label"] == "SASRec"]
    assert two_seeds == pytest.approx([statistics.fmean(seeds), statistics.stdev(seeds)], abs=1e-4)
    assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| LLMEMF |" in capsys.readouterr().out

    # item groups: every test case in one group, every row tested against LLMEMF per group
    cases = read_cases(stem.with_name(stem.name + ".cases.npz"))
    for domain, groups in results["groups"].items():
        assert sum(entry["cases"] for entry in groups.values()) == len(
            cases[("LLMEMF", 1)][domain]["item"]
        )
        for entry in groups.values():
            assert entry["against"] == "LLMEMF" and set(SIX) <= entry.keys()
    assert "### Movie: MRR (%) by test target" in report
    # the counts of prefix-row models (SASRec) and per-position ones (LLMEMF) agree
    for domain in ("Movie", "Book"):
        counts = [cases[(model, 1)][domain]["train_count"] for model in ("LLMEMF", "SASRec")]
        assert np.array_equal(*counts) and counts[0].max() > 0


def bench(tiny_dataset, out, *options, sets=()):
    return main(
        ["--dataset=tiny", f"--data-path={tiny_dataset.data_path}", "--epochs=1", f"--out={out}"]
        + list(options)
        + ["--set", *SMALL, *sets]
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


def test_every_content_profile_label_runs_through_run_recbole(tiny_dataset, tmp_path):
    """One epoch each, through RecBole's run_recbole (its FLOPs count calls predict)."""
    labels = [label for label in CONTENT if "profile" in label or "mixture" in label]
    assert bench(tiny_dataset, tmp_path, f"--models={','.join(labels)}") == 0
    runs = json.loads((tmp_path / "tiny-full.json").read_text())["runs"]
    assert {run["label"]: run["status"] for run in runs} == dict.fromkeys(labels, "ok")


def test_llmemf_keeps_its_own_learning_rate_unless_set(tiny_dataset):
    """OWN_SETTINGS: the shared 0.001 reaches the baselines, LLMEMF keeps the rate its yaml tunes
    unless --set gives one to every model, and LLMEMF-paper is the paper's settings."""
    base = {**tiny_dataset.config, **SHARED, "data_path": str(tiny_dataset.data_path)}

    def effective(label: str, asked: dict | None = None) -> dict:
        [(_, model, overrides)] = model_specs(label, ablations=False)
        asked = asked or {}
        config = model_config({**base, **asked}, {}, label, model, overrides, asked)
        return effective_config_of(model, "tiny", config, [])

    assert effective("SASRec")["learning_rate"] == SHARED["learning_rate"] == 0.001
    llmemf = effective("LLMEMF")
    assert llmemf["learning_rate"] == 0.003
    assert llmemf["content_profile_scales"] == [0, 1, 2, 4]
    assert effective("LLMEMF-ids", {"learning_rate": 0.01})["learning_rate"] == 0.01
    paper = effective("LLMEMF-paper")
    assert paper["learning_rate"] == 0.001 and "content_profile_scales" not in paper


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


def test_resume_reads_back_finished_runs_and_reruns_a_changed_config(
    tiny_dataset, tmp_path, monkeypatch
):
    assert bench(tiny_dataset, tmp_path, "--models=SASRec,BPR", "--seeds=1,2") == 0
    first = json.loads((tmp_path / "tiny-full.json").read_text())
    cases_before = dict(np.load(tmp_path / "tiny-full.cases.npz"))
    trained = []
    real_run_one = bench_module.run_one
    monkeypatch.setattr(
        bench_module, "run_one", lambda label, *a: trained.append(label) or real_run_one(label, *a)
    )
    options = ["--models=SASRec,BPR", "--seeds=1,2", "--resume"]
    newer = {**first, "runs": [{**run, "key_of_a_newer_version": 1} for run in first["runs"]]}
    (tmp_path / "tiny-full.json").write_text(json.dumps(newer))
    assert bench(tiny_dataset, tmp_path, *options) == 0
    assert trained == []  # every run read back, a newer version's records too
    second = json.loads((tmp_path / "tiny-full.json").read_text())
    assert second["runs"] == first["runs"] and second["summary"] == first["summary"]
    cases_after = np.load(tmp_path / "tiny-full.cases.npz")
    assert set(cases_after.files) == set(cases_before)
    for key, values in cases_before.items():
        assert (cases_after[key] == values).all()

    # a config change of one model reruns that model only
    assert bench(tiny_dataset, tmp_path, *options, sets=["BPR.embedding_size=8"]) == 0
    assert trained == ["BPR", "BPR"]


class Killed(BaseException):
    """A kill: not an Exception, so the benchmark does not record the run as failed."""


@pytest.mark.parametrize("model", ["SASRec", "LLMEMF", "BPR"])
def test_killed_run_resumes_from_its_last_epoch_and_ends_as_an_uninterrupted_one(
    tiny_dataset, tmp_path, monkeypatch, model
):
    options = [f"--models={model}", "--seeds=3", "--epochs=3"]  # patience 10: no early stop
    assert bench(tiny_dataset, tmp_path / "whole", *options) == 0
    whole = json.loads((tmp_path / "whole" / "tiny-full.json").read_text())["runs"][0]

    kill_at = {"epoch": 2}
    train_epoch = Trainer._train_epoch

    def killing_train_epoch(trainer, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx == kill_at["epoch"]:  # epochs 0 and 1 done and checkpointed
            raise Killed
        return train_epoch(trainer, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", killing_train_epoch)
    with pytest.raises(Killed):
        bench(tiny_dataset, tmp_path / "killed", *options)
    last = tmp_path / "killed" / "checkpoints" / "tiny-full" / f"{model}-seed3-last.pth"
    assert load_checkpoint(str(last))["epoch"] == 1

    kill_at["epoch"] = None
    resumed_from = []
    resume_checkpoint = Trainer.resume_checkpoint
    monkeypatch.setattr(
        Trainer,
        "resume_checkpoint",
        lambda trainer, path: resumed_from.append(path) or resume_checkpoint(trainer, path),
    )
    assert bench(tiny_dataset, tmp_path / "killed", *options, "--resume") == 0
    run = json.loads((tmp_path / "killed" / "tiny-full.json").read_text())["runs"][0]
    assert resumed_from == [str(last)] and run["resumed_from_epoch"] == 2
    assert len(run["epoch_seconds"]) == 3  # two before the kill, one after
    # the random states travel with the checkpoint, so the resumed epoch is the uninterrupted one
    assert run["test_result"] == whole["test_result"]
    # the finished run is in the JSON, its resumable state gone; RecBole's best one stays
    assert [path.name for path in last.parent.iterdir()] == [f"{model}-seed3.pth"]


def test_a_killed_run_of_another_config_starts_afresh_and_says_why(
    tiny_dataset, tmp_path, monkeypatch, capsys
):
    options = ["--models=SASRec", "--seeds=3", "--epochs=3"]
    train_epoch = Trainer._train_epoch

    def killing_train_epoch(trainer, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx == 1:
            raise Killed
        return train_epoch(trainer, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", killing_train_epoch)
    with pytest.raises(Killed):
        bench(tiny_dataset, tmp_path, *options)
    monkeypatch.setattr(Trainer, "_train_epoch", train_epoch)
    capsys.readouterr()
    assert bench(tiny_dataset, tmp_path, *options, "--resume", sets=["SASRec.n_heads=1"]) == 0
    assert (
        "SASRec seed 3: SASRec-seed3-last.pth was written with other values of ['n_heads']; "
        "training from the first epoch" in capsys.readouterr().out
    )
    run = json.loads((tmp_path / "tiny-full.json").read_text())["runs"][0]
    assert run["resumed_from_epoch"] in (None, 0) and len(run["epoch_seconds"]) == 3


def test_time_budget_stops_after_the_first_epoch_and_still_tests(tiny_dataset, tmp_path):
    options = ["--models=SASRec", "--epochs=4", "--time-budget=0.000001"]
    assert bench(tiny_dataset, tmp_path, *options) == 0
    run = json.loads((tmp_path / "tiny-full.json").read_text())["runs"][0]
    assert run["status"] == "ok" and run["budget_stopped"] is True
    assert len(run["epoch_seconds"]) == 1 and 0 < run["test_result"]["Movie/fullmrr"] <= 1
    assert run["train_seconds"] >= run["epoch_seconds"][0]
    assert "1 of 1 stopped by --time-budget" in (tmp_path / "tiny-full.md").read_text()


def test_budget_stopped_run_goes_on_with_a_larger_budget_as_if_never_stopped(
    tiny_dataset, tmp_path
):
    options = ["--models=SASRec", "--seeds=3", "--epochs=3"]
    assert bench(tiny_dataset, tmp_path / "whole", *options) == 0
    whole = json.loads((tmp_path / "whole" / "tiny-full.json").read_text())["runs"][0]
    assert len(whole["valid_scores"]) == 3  # the validation curve, one score per epoch

    stopped_dir = tmp_path / "stopped"
    assert bench(tiny_dataset, stopped_dir, *options, "--resume", "--time-budget=0.000001") == 0
    stopped_json = (stopped_dir / "tiny-full.json").read_text()
    stopped = json.loads(stopped_json)["runs"][0]
    assert stopped["budget_stopped"] and len(stopped["valid_scores"]) == 1
    # the same budget again: the run is done and read back
    assert bench(tiny_dataset, stopped_dir, *options, "--resume", "--time-budget=0.000001") == 0
    assert json.loads((stopped_dir / "tiny-full.json").read_text())["runs"][0] == stopped

    assert bench(tiny_dataset, stopped_dir, *options, "--resume") == 0  # no budget now
    run = json.loads((stopped_dir / "tiny-full.json").read_text())["runs"][0]
    assert run["resumed_from_epoch"] == 1 and not run["budget_stopped"]
    assert run["valid_scores"] == whole["valid_scores"]
    assert run["test_result"] == whole["test_result"]
    scores = run["valid_scores"]
    best = best_epoch_index(scores)
    seconds = sum(run["epoch_seconds"][: best + 1])
    row = f"| SASRec | 3 | {best + 1} | {max(scores):.4f} | {seconds:.0f} |"
    convergence = (stopped_dir / "tiny-full.md").read_text().split("### Convergence")[1]
    assert row in convergence
    curve = [f"{v:.4f}" for v in scores]
    curve[best] = f"**{curve[best]}**"
    assert f"- SASRec, seed {run['seed']}: {' '.join(curve)}" in convergence

    # the budget-stopped row with the checkpoint of the finished run: a retest refuses to pair them
    assert best > 0, "the tiny run must improve after its first epoch for this check"
    five_negatives = tmp_path / "uni5.yaml"
    five_negatives.write_text(yaml.safe_dump({"eval_args": SAMPLED_5["eval_args"]}))
    retest = [*options, "--protocol=sampled999", f"--config-files={five_negatives}"]
    retest += ["--retest-from=tiny-full", "--name=retest"]
    finished_json = (stopped_dir / "tiny-full.json").read_text()
    (stopped_dir / "tiny-full.json").write_text(stopped_json)
    assert bench(tiny_dataset, stopped_dir, *retest) == 1
    refused = json.loads((stopped_dir / "retest.json").read_text())["runs"][0]
    assert refused["status"] == "failed"
    assert f"holds epoch {best + 1}" in refused["error"] and "tested at epoch 1" in refused["error"]
    (stopped_dir / "tiny-full.json").write_text(finished_json)
    assert bench(tiny_dataset, stopped_dir, *retest) == 0
    retested = json.loads((stopped_dir / "retest.json").read_text())["runs"][0]
    assert retested["status"] == "ok" and retested["valid_scores"] == scores


def test_best_epoch_is_the_one_whose_checkpoint_recbole_keeps():
    scores = [0.0577, 0.0742, 0.0741, 0.0764, 0.0756, 0.0764, 0.0725]  # GRU4Rec on Food-Kitchen
    best, steps, kept = float("-inf"), 0, None
    for epoch, score in enumerate(scores):
        best, steps, _, improved = early_stopping(score, best, steps, max_step=10)
        kept = epoch if improved else kept
    assert best_epoch_index(scores) == kept == 5


def test_resumed_benchmarks_on_one_stem_keep_each_others_runs(tiny_dataset, tmp_path):
    """Two processes (here one after the other) share a stem: neither drops the other's runs."""
    assert bench(tiny_dataset, tmp_path, "--models=SASRec", "--resume") == 0
    assert bench(tiny_dataset, tmp_path, "--models=BPR", "--seeds=1,2", "--resume") == 0
    results = json.loads((tmp_path / "tiny-full.json").read_text())
    assert [(run["label"], run["seed"]) for run in results["runs"]] == [
        ("SASRec", 2020),
        ("BPR", 1),
        ("BPR", 2),
    ]
    report = (tmp_path / "tiny-full.md").read_text()
    assert "| SASRec | 1 |" in report and "| BPR | 2 |" in report and "Seeds 1,2,2020;" in report
    assert "`llmemf-bench --dataset=tiny" in report and "--models=SASRec" in report
    assert "--models=BPR" in report
    assert set(np.load(tmp_path / "tiny-full.cases.npz").files) >= {
        case_key("SASRec", 2020, "Movie", "higher"),
        case_key("BPR", 2, "Book", "higher"),
    }

    # without --resume a benchmark starts the stem afresh
    assert bench(tiny_dataset, tmp_path, "--models=BPR", "--seeds=1") == 0
    results = json.loads((tmp_path / "tiny-full.json").read_text())
    assert [(run["label"], run["seed"]) for run in results["runs"]] == [("BPR", 1)]


def test_retest_under_another_protocol_equals_training_under_it(tiny_dataset, tmp_path):
    """One epoch (so both protocols keep the same checkpoint): the best checkpoint of the `full`
    run, tested under `sampled999`, gives exactly the test of a run trained under `sampled999`.
    LLMEMF-paper: the content profile's scale is chosen on validation, under the training
    protocol, as the epoch is, so LLMEMF's default is retested with the scale `full` chose."""
    options = ["--models=SASRec,BPR,LLMEMF-paper", "--seeds=5"]
    assert bench(tiny_dataset, tmp_path, *options) == 0
    five_negatives = tmp_path / "uni5.yaml"  # the tiny domains have 18 items
    five_negatives.write_text(yaml.safe_dump({"eval_args": SAMPLED_5["eval_args"]}))
    sampled = ["--protocol=sampled999", f"--config-files={five_negatives}"]
    assert bench(tiny_dataset, tmp_path / "direct", *options, *sampled) == 0
    retest = [*options, *sampled, "--retest-from=tiny-full", "--name=retest"]
    assert bench(tiny_dataset, tmp_path, *retest) == 0

    full = json.loads((tmp_path / "tiny-full.json").read_text())["runs"]
    direct = json.loads((tmp_path / "direct" / "tiny-sampled999.json").read_text())["runs"]
    retested = json.loads((tmp_path / "retest.json").read_text())["runs"]
    for trained, again, run in zip(full, direct, retested):
        assert run["status"] == "ok" and run["trained_under"] == "full"
        assert run["test_result"] == again["test_result"] != trained["test_result"]
        assert run["valid_scores"] == trained["valid_scores"]
        assert run["epoch_seconds"] == trained["epoch_seconds"]
    assert (
        "trained, and early-stopped on validation, under `full`"
        in (tmp_path / "retest.md").read_text()
    )

    # a run the source lacks is left out; a config that the source runs did not train is refused
    only_seed_5 = ["--models=SASRec", "--seeds=5,6", *sampled, "--retest-from=tiny-full"]
    assert bench(tiny_dataset, tmp_path, *only_seed_5, "--name=seeds") == 0
    seeds = json.loads((tmp_path / "seeds.json").read_text())["runs"]
    assert [(run["label"], run["seed"]) for run in seeds] == [("SASRec", 5)]
    assert bench(tiny_dataset, tmp_path, *retest, sets=["SASRec.hidden_size=32"]) == 0
    runs = json.loads((tmp_path / "retest.json").read_text())["runs"]
    assert runs[0]["status"] == "failed" and "hidden_size" in runs[0]["error"]


def test_read_back_run_leaves_no_resume_checkpoint_and_no_stale_temporary_files(
    tiny_dataset, tmp_path
):
    """A run killed after its row was written keeps ``-last.pth``, and a writer killed mid-write
    its ``<file>.<random>.tmp``: the next --resume that reads the row back removes both."""
    options = ["--models=BPR", "--seeds=5", "--resume"]
    assert bench(tiny_dataset, tmp_path, *options) == 0
    last = tmp_path / "checkpoints" / "tiny-full" / "BPR-seed5-last.pth"
    last.write_bytes(b"left by a kill")
    stale = tmp_path / "tiny-full.png.k1ll3d.tmp"
    stale.write_bytes(b"")
    assert bench(tiny_dataset, tmp_path, *options) == 0
    assert not last.exists() and not stale.exists()
    assert (tmp_path / "tiny-full.png").is_file()


def test_a_run_another_process_trains_is_left_to_it(tiny_dataset, tmp_path, capsys):
    """Two --resume lanes given the same models split them: a run's lock held elsewhere (here
    by another open file of this process: flock locks belong to the open file) means skip it."""
    with open(tmp_path / ".tiny-full.BPR-seed5.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert bench(tiny_dataset, tmp_path, "--models=BPR,ItemKNN", "--seeds=5", "--resume") == 0
        fcntl.flock(held, fcntl.LOCK_UN)
    assert "BPR seed 5: trained by another process" in capsys.readouterr().out
    runs = json.loads((tmp_path / "tiny-full.json").read_text())["runs"]
    assert [run["label"] for run in runs] == ["ItemKNN"]
    assert bench(tiny_dataset, tmp_path, "--models=BPR,ItemKNN", "--seeds=5", "--resume") == 0
    runs = json.loads((tmp_path / "tiny-full.json").read_text())["runs"]
    assert sorted(run["label"] for run in runs) == ["BPR", "ItemKNN"]


def test_retest_of_a_run_validated_every_second_epoch(tiny_dataset, tmp_path):
    """With eval_step 2 the best checkpoint is of epoch 2, validation 1: not a run gone on."""
    options = ["--models=SASRec", "--seeds=5", "--epochs=2"]
    assert bench(tiny_dataset, tmp_path, *options, sets=["eval_step=2"]) == 0
    five_negatives = tmp_path / "uni5.yaml"  # the tiny domains have 18 items
    five_negatives.write_text(yaml.safe_dump({"eval_args": SAMPLED_5["eval_args"]}))
    sampled = ["--protocol=sampled999", f"--config-files={five_negatives}"]
    retest = [*options, *sampled, "--retest-from=tiny-full", "--name=retest"]
    assert bench(tiny_dataset, tmp_path, *retest, sets=["eval_step=2"]) == 0
    (run,) = json.loads((tmp_path / "retest.json").read_text())["runs"]
    assert run["status"] == "ok", run["error"]
    assert len(run["valid_scores"]) == 1 and len(run["epoch_seconds"]) == 2


def test_resumed_retest_reads_rows_back_without_checkpoints_until_their_run_goes_on(
    tiny_dataset, tmp_path
):
    options = ["--models=SASRec", "--seeds=3", "--epochs=2"]
    five_negatives = tmp_path / "uni5.yaml"  # the tiny domains have 18 items
    five_negatives.write_text(yaml.safe_dump({"eval_args": SAMPLED_5["eval_args"]}))
    sampled = ["--protocol=sampled999", f"--config-files={five_negatives}"]
    retest = [*options, *sampled, "--retest-from=tiny-full", "--resume"]
    assert bench(tiny_dataset, tmp_path, *options, "--resume", "--time-budget=0.000001") == 0
    assert bench(tiny_dataset, tmp_path, *retest) == 0
    first = json.loads((tmp_path / "tiny-sampled999.json").read_text())["runs"][0]
    assert first["status"] == "ok" and len(first["valid_scores"]) == 1

    shutil.rmtree(tmp_path / "checkpoints")  # a new machine: the row needs no checkpoint
    assert bench(tiny_dataset, tmp_path, *retest) == 0
    assert json.loads((tmp_path / "tiny-sampled999.json").read_text())["runs"][0] == first

    assert bench(tiny_dataset, tmp_path, *options, "--resume") == 0  # no budget: trains on
    trained = json.loads((tmp_path / "tiny-full.json").read_text())["runs"][0]
    assert len(trained["valid_scores"]) == 2
    assert bench(tiny_dataset, tmp_path, *retest) == 0
    again = json.loads((tmp_path / "tiny-sampled999.json").read_text())["runs"][0]
    assert again["status"] == "ok" and again["valid_scores"] == trained["valid_scores"]


def test_per_case_file_holds_every_test_case_once_with_the_reported_means(tiny_dataset, tmp_path):
    assert bench(tiny_dataset, tmp_path, "--models=LLMEMF,ItemKNN") == 0
    runs = json.loads((tmp_path / "tiny-full.json").read_text())["runs"]
    cases = np.load(tmp_path / "tiny-full.cases.npz")
    test_cases = 0
    for domain in ("Movie", "Book"):
        keys = None
        for run in runs:
            column = functools.partial(case_key, run["label"], run["seed"], domain)
            user, item = cases[column("user")], cases[column("item")]
            pairs = set(zip(user.tolist(), item.tolist()))
            assert len(pairs) == len(user) and all(user)  # one entry per case, all keyed
            assert keys is None or pairs == keys  # the same cases in every run: pairable
            keys = pairs
            values = per_case_values(cases[column("higher")], cases[column("equal")])
            for metric in ("fullmrr", "ndcg@10"):  # the per-case values average to the table
                reported = run["test_result"][f"{domain}/{metric}"]
                assert values[metric].mean() == pytest.approx(reported, abs=1e-4)
        test_cases += len(keys)
    assert test_cases == tiny_test_cases(tiny_dataset)


def tiny_test_cases(tiny_dataset) -> int:
    """Leave-one-out: one test case per user, counted from the interaction file."""
    lines = (tiny_dataset.data_path / "tiny" / "tiny.inter").read_text().splitlines()[1:]
    return len({line.split("\t")[0] for line in lines})


def test_every_run_trains_without_anomaly_detection(tiny_dataset, monkeypatch):
    """RecBole's sine.py turns anomaly detection on for the rest of the process; the bench turns it
    off for each run, so the runs after a RecBole sequential model are not slowed by it."""
    seen = []
    real_train_epoch = Trainer._train_epoch

    def train_epoch(self, *args, **kwargs):
        seen.append(torch.is_anomaly_enabled())
        return real_train_epoch(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", train_epoch)
    torch.autograd.set_detect_anomaly(True)
    try:
        run = bench_module.run_one(
            "BPR", "BPR", tiny_dataset.name, {**tiny_dataset.config, "seed": 1}, []
        )
    finally:
        torch.autograd.set_detect_anomaly(False)
    assert run.status == "ok" and seen == [False]


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bars_on_a_terminal_only_and_not_in_the_recorded_config(
    terminal, tiny_dataset, tmp_path, monkeypatch
):
    asked = []
    monkeypatch.setattr(bench_module.sys.stderr, "isatty", lambda: terminal)

    def run_one(label, model, dataset, config, *args):
        asked.append(config)
        return Run(label, model, config["seed"], status="failed", error="not trained")

    monkeypatch.setattr(bench_module, "run_one", run_one)
    options = [f"--data-path={tiny_dataset.data_path}", f"--out={tmp_path}", "--models=BPR"]
    main(["--dataset=tiny", *options])
    assert [config["show_progress"] for config in asked] == [terminal]
    config = effective_config_of("BPR", "tiny", {**asked[0]}, [])
    assert "show_progress" not in config
