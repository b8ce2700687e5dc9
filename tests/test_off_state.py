"""Importing the plugin changes nothing for configs without its options (no domain_field, no
protocol): RecBole's own model on RecBole's own kind of dataset gets RecBole's numbers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from recbole_llmemf.dataset_tools.synthetic import SyntheticSpec, generate

SPEC = SyntheticSpec(name="tiny", n_users=80, items_per_group=6, n_groups=3, min_len=6, max_len=9)

# Run in a fresh interpreter each time, so that nothing the plugin patched can leak in.
SCRIPT = textwrap.dedent(
    """
    import json, sys, types

    if sys.argv[1] == "plugin":
        import recbole_llmemf  # noqa: F401
    else:  # the least RecBole 1.2.1 needs on numpy 2 and a setuptools without pkg_resources
        import numpy as np

        for name, value in [("float_", np.float64), ("complex_", np.complex128),
                            ("unicode_", np.str_), ("bool8", np.bool_)]:
            if not hasattr(np, name):
                setattr(np, name, value)
        try:
            from ray import tune  # noqa: F401
        except ImportError:
            ray = types.ModuleType("ray")
            ray.tune = types.ModuleType("ray.tune")
            sys.modules.update({"ray": ray, "ray.tune": ray.tune})
    from recbole.quick_start import run_recbole

    sys.argv = sys.argv[:1]
    result = run_recbole(model="SASRec", dataset="plain", saved=False, config_dict={
        "data_path": "dataset", "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "epochs": 1, "hidden_size": 16, "inner_size": 16,
        "train_batch_size": 64, "eval_batch_size": 64, "MAX_ITEM_LIST_LENGTH": 8,
        "train_neg_sample_args": None, "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"],
        "topk": [5, 10], "use_gpu": False, "state": "WARNING", "show_progress": False,
    })
    print(json.dumps({"valid": result["best_valid_result"], "test": result["test_result"]}))
    """
)


def run_fresh(mode: str, folder) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_recbole_model_without_our_options_gets_recbole_numbers(tmp_path):
    """SASRec, 1 epoch, on a dataset with neither domain_field nor protocol: with and without
    the plugin imported, every validation and test metric is the same."""
    generate(SPEC, tmp_path / "generated")
    plain = tmp_path / "dataset" / "plain"
    plain.mkdir(parents=True)
    shutil.copy(tmp_path / "generated" / "tiny" / "tiny.inter", plain / "plain.inter")
    recbole = run_fresh("recbole", tmp_path)
    with_plugin = run_fresh("plugin", tmp_path)
    assert set(recbole["test"]) == {
        f"{m}@{k}" for m in ("recall", "mrr", "ndcg", "hit", "precision") for k in (5, 10)
    }
    assert with_plugin == recbole


def test_numpy_deprecation_warnings_survive_the_import():
    """On numpy 1.x, np.bool8 (which ray uses) is deprecated but there: the plugin must not
    replace it, which would silence the DeprecationWarning that RecBole users see without it."""
    check = textwrap.dedent(
        """
        import json, warnings
        import numpy as np
        import recbole_llmemf  # noqa: F401
        warned = {}
        for name in getattr(np, "__deprecated_attrs__", {}):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                getattr(np, name)
            warned[name] = [w.category.__name__ for w in caught]
        print(json.dumps(warned))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    warned = json.loads(done.stdout.strip().splitlines()[-1])
    if not warned:
        pytest.skip("this numpy has no deprecated aliases")
    assert all("DeprecationWarning" in categories for categories in warned.values()), warned
