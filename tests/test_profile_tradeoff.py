"""benchmarks/profile_tradeoff.py: a trained LLMEMF's profile re-chosen on validation per tolerance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from test_bench import bench

from recbole_llmemf.bench.specs import VARIANTS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "profile_tradeoff.py"

LABEL = "LLMEMF-ids+text-cold-mixture"


def test_tolerance_zero_on_the_trained_grid_reproduces_the_benchmark_row(tiny_dataset, tmp_path):
    """Re-chosen on the validation of the best checkpoint with the grid it was trained with, the
    profile is the one training chose there: the same test numbers, beside the --with row."""
    assert bench(tiny_dataset, tmp_path, f"--models={LABEL}") == 0
    trained = json.loads((tmp_path / "tiny-full.json").read_text())["runs"][0]
    checkpoint = tmp_path / "checkpoints" / "tiny-full" / f"{LABEL}-seed{trained['seed']}.pth"
    argv = [
        str(checkpoint),
        f"--data-path={tiny_dataset.data_path}",
        "--tolerances",
        "0",
        "0.5",
        "--with",
        f"{tmp_path}:tiny-full:{LABEL}:{trained['seed']}",
        f"--out={tmp_path / 'tradeoff'}",
        "--name=tiny-tradeoff",
    ]
    # a fresh process: the script must set up the plugin's evaluation itself
    subprocess.run([sys.executable, str(SCRIPT), *argv], check=True, cwd=tmp_path)
    runs = json.loads((tmp_path / "tradeoff" / "tiny-tradeoff.json").read_text())["runs"]
    assert [run["label"] for run in runs] == [LABEL, f"{LABEL} tol0", f"{LABEL} tol0.5"]
    assert runs[1]["test_result"] == trained["test_result"]
    # the tiny data has no never-trained item: every tolerance keeps the best setting
    assert runs[2]["test_result"] == trained["test_result"]
    report = (tmp_path / "tradeoff" / "tiny-tradeoff.md").read_text()
    assert "MRR (%) by test target" in report and "profile_tradeoff.py" in report


def test_another_labels_grid_replaces_the_trained_one(tiny_dataset, tmp_path):
    """Trained with the constant cold offset, re-chosen with the mixture's grid: every row's
    settings are the mixture's, and a key the checkpoint's config lacks (an older run's) is set."""
    trained_label = "LLMEMF-ids+text-cold-profile"
    assert bench(tiny_dataset, tmp_path, f"--models={trained_label}") == 0
    seed = json.loads((tmp_path / "tiny-full.json").read_text())["runs"][0]["seed"]
    checkpoint = tmp_path / "checkpoints" / "tiny-full" / f"{trained_label}-seed{seed}.pth"
    saved = torch.load(checkpoint, weights_only=False)
    del saved["config"].final_config_dict["content_profile_warm_temperatures"]
    torch.save(saved, checkpoint)
    argv = [str(checkpoint), f"--data-path={tiny_dataset.data_path}", "--tolerances", "0"]
    argv += [f"--label={LABEL}", f"--out={tmp_path / 'tradeoff'}", "--name=tiny-tradeoff"]
    subprocess.run([sys.executable, str(SCRIPT), *argv], check=True, cwd=tmp_path)
    runs = json.loads((tmp_path / "tradeoff" / "tiny-tradeoff.json").read_text())["runs"]
    chosen = runs[0]["config"]["chosen"]
    warm = {
        f"experts: trained / {t:g}," for t in VARIANTS[LABEL]["content_profile_warm_temperatures"]
    }
    assert len(chosen) == 2 and all(any(w in text for w in warm) for text in chosen)


def test_a_label_without_cold_items_and_set_values_over_a_labels_grid(tiny_dataset, tmp_path):
    """A label without never-trained items takes tolerance 0 alone; ``--set`` replaces a key of the
    label's grid; this script's rows serve as --with rows of the next run."""
    assert bench(tiny_dataset, tmp_path, "--models=LLMEMF") == 0
    seed = json.loads((tmp_path / "tiny-full.json").read_text())["runs"][0]["seed"]
    checkpoint = tmp_path / "checkpoints" / "tiny-full" / f"LLMEMF-seed{seed}.pth"
    common = [str(checkpoint), f"--data-path={tiny_dataset.data_path}", f"--out={tmp_path}"]
    refused = subprocess.run(
        [sys.executable, str(SCRIPT), *common, "--label=LLMEMF+domain-profile", "--name=a"]
        + ["--tolerances", "0", "0.01"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "--tolerances 0" in refused.stderr
    argv = [*common, "--label=LLMEMF+domain-profile", "--tolerances", "0", "--name=profile"]
    argv += ["--set", "content_profile_scales=[3]"]
    subprocess.run([sys.executable, str(SCRIPT), *argv], check=True, cwd=tmp_path)
    (row,) = json.loads((tmp_path / "profile.json").read_text())["runs"]
    assert [text.split(" (")[0] for text in row["config"]["chosen"]] == ["Movie scale 3", "Book scale 3"]
    argv = [*common, "--label=LLMEMF+domain-mixture", "--tolerances", "0", "--name=mixture"]
    argv += ["--set", "content_profile_warm_temperatures=[0.3]", "--row-label=tw0.3", "--with"]
    argv += [f"{tmp_path}:profile:LLMEMF+domain-profile tol0:{seed}"]
    subprocess.run([sys.executable, str(SCRIPT), *argv], check=True, cwd=tmp_path)
    runs = json.loads((tmp_path / "mixture.json").read_text())["runs"]
    assert [run["label"] for run in runs] == [
        "LLMEMF+domain-profile tol0",
        "tw0.3 tol0",
    ]
    assert all("experts: trained / 0.3," in text for text in runs[1]["config"]["chosen"])
