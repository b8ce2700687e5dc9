"""Is the plugin a good guest? RecBole's own tests and numbers, with and without ``recbole_llmemf``.

Runs a part of RecBole v1.2.1's own test suite twice, each time in fresh interpreters: once with a
minimal shim that only lets RecBole 1.2.1 run on today's numpy / torch / ray (``shim``), once with
the plugin imported instead (``plugin``). Then trains RecBole's own SASRec, GRU4Rec, SRGNN, BPR and
ItemKNN for one epoch on RecBole's test data in both settings and compares every test metric.

RecBole's tests are not shipped in its wheel; check out its ``tests/`` folder at tag v1.2.1::

    git clone --depth 1 --branch v1.2.1 https://github.com/RUCAIBox/RecBole recbole-src
    python benchmarks/recbole_guest_check.py recbole-src/tests
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SUITES = ["metrics", "evaluation_setting", "config"]
MODEL_TESTS = "test_sasrec or test_gru4rec or test_srgnn or test_bpr or test_itemknn"
COMPARED_MODELS = ["SASRec", "GRU4Rec", "SRGNN", "BPR", "ItemKNN"]
CE_MODELS = "SASRec,GRU4Rec,SRGNN"  # RecBole's own tests turn negative sampling off for them

# What RecBole 1.2.1 needs on numpy 2 / torch >= 2.6 / setuptools >= 81, and nothing else.
SHIM = """
import sys, types, functools
import numpy as np
for name, value in {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_,
                    "bool8": np.bool_, "float": float, "int": int, "bool": bool}.items():
    # not hasattr, which warns on a deprecated or former alias and would count as RecBole's
    if name not in vars(np) and name not in getattr(np, "__deprecated_attrs__", {}):
        setattr(np, name, value)
try:
    from ray import tune  # noqa: F401
except ImportError:
    tune = types.ModuleType("ray.tune")
    tune.report = lambda *args, **kwargs: None
    ray = types.ModuleType("ray")
    ray.tune = tune
    sys.modules.update({"ray": ray, "ray.tune": tune})
import torch
_load = torch.load
torch.load = functools.wraps(_load)(lambda *a, **k: _load(*a, **{"weights_only": False, **k}))
"""
PLUGIN = "import recbole_llmemf\n"

# Config parses sys.argv itself, so the models and the yaml come through the environment.
TRAIN = """
import json, os
from recbole.quick_start import objective_function
results = {}
for model in os.environ["GUEST_MODELS"].split(","):
    config = {"model": model, "seed": 2020, "use_gpu": False}
    if model in os.environ["GUEST_CE_MODELS"].split(","):
        config["train_neg_sample_args"] = None
    out = objective_function(
        config_dict=config,
        config_file_list=[os.environ["GUEST_CONFIG"]], saved=False,
    )
    results[model] = {k: float(v) for k, v in out["test_result"].items()}
print("RESULTS " + json.dumps(results))
"""


def pytest_counts(tests: Path, setup: Path, targets: list[str], select: str | None) -> str:
    """Run pytest on ``targets`` with ``setup`` imported first; return pytest's summary line."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", setup.stem, *targets]
    if select:
        command += ["-k", select]
    env = {**os.environ, "PYTHONPATH": str(setup.parent), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, cwd=tests.parent, env=env, capture_output=True, text=True, check=False
    )
    summary = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    return "\n".join(summary[-1:] + failed)


def model_results(tests: Path, setup: Path) -> dict:
    code = setup.read_text() + TRAIN
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GUEST_MODELS": ",".join(COMPARED_MODELS),
        "GUEST_CE_MODELS": CE_MODELS,
        "GUEST_CONFIG": str(tests / "model" / "test_model.yaml"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tests.parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULTS "))
    return json.loads(line[len("RESULTS ") :])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests", type=Path, help="RecBole v1.2.1's tests/ folder")
    parser.add_argument(
        "--suites",
        choices=["both", "plugin", "none"],
        default="both",
        help="where to run RecBole's test files (the metric comparison always runs both)",
    )
    args = parser.parse_args(argv)
    tests = args.tests.resolve()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode, code in (("shim", SHIM), ("plugin", PLUGIN)):
            setup = Path(folder) / f"guest_{mode}.py"
            setup.write_text(code)
            results[mode] = model_results(tests, setup)
            if args.suites == "none" or (args.suites == "plugin" and mode == "shim"):
                continue
            suites = pytest_counts(tests, setup, [f"tests/{s}" for s in SUITES], None)
            models = pytest_counts(tests, setup, ["tests/model/test_model_auto.py"], MODEL_TESTS)
            print(f"[{mode}] tests/{{{','.join(SUITES)}}}: {suites}", flush=True)
            print(f"[{mode}] model tests ({MODEL_TESTS}): {models}", flush=True)
    differing = 0
    for model in COMPARED_MODELS:
        shim, plugin = results["shim"][model], results["plugin"][model]
        diff = {k: (shim[k], plugin.get(k)) for k in shim if shim[k] != plugin.get(k)}
        differing += bool(diff) or shim.keys() != plugin.keys()
        print(f"{model}: {'same test metrics' if not diff else f'DIFFERENT {diff}'} {shim}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
