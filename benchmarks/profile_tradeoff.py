"""The content profile of a trained LLMEMF re-chosen on validation, at several cold tolerances.

The profile is evaluation-only (model/content_profile.py), so a trained checkpoint can take another
grid without training again. One validation pass counts every setting of ``--label``'s grid
(trainer/profile_choice.py); then each ``--tolerances`` value (``content_profile_cold_tolerance``:
among the settings within that fraction of the best validation score, the best on the never-trained
validation targets with a content vector) chooses its settings per domain, and the test follows.
Every row has the same weights; the rows, and those of ``--with`` (finished benchmark rows, e.g.
IDs only), go through the benchmark's own tables, item groups and paired tests.

    python benchmarks/profile_tradeoff.py \\
        out/checkpoints/c29-ids-cold/LLMEMF-ids+text-cold-profile-seed2020.pth \\
        --label LLMEMF-ids+text-cold-mixture \\
        --tolerances 0 0.005 0.01 0.02 0.03 --with out:c29-ids:LLMEMF-ids:2020 \\
        --out results --name food_kitchen-profile-tradeoff-sampled999
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import recbole_llmemf  # noqa: F401  first: RecBole's compat fixes, LLMEMF, domain-aware trainers

# isort: split
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed

from recbole_llmemf.bench.groups import attach_train_counts
from recbole_llmemf.bench.records import Run
from recbole_llmemf.bench.report import write_files
from recbole_llmemf.bench.run import finished_runs
from recbole_llmemf.bench.specs import VARIANTS, parse_set
from recbole_llmemf.config.configurator import model_yaml_files
from recbole_llmemf.trainer.profile_choice import apply_choice, validate_settings
from recbole_llmemf.utils.checkpoint import load_checkpoint


def profile_grid(label: str, changes: dict) -> dict:
    """The ``content_profile_*`` keys of ``label`` (LLMEMF's yaml defaults where the label leaves
    one), with ``changes`` (--set) over them."""
    import yaml

    (llmemf_yaml,) = model_yaml_files("LLMEMF", None)
    defaults = yaml.safe_load(llmemf_yaml.read_text(encoding="utf-8"))
    grid = {key: value for key, value in defaults.items() if key.startswith("content_profile_")}
    unknown = [key for key in changes if key not in grid]
    if unknown:
        raise SystemExit(f"--set {unknown}: not content_profile_* keys of LLMEMF")
    label_keys = {key: value for key, value in VARIANTS[label].items() if key in grid}
    return {**grid, **label_keys, **changes}


def rebuilt(checkpoint: dict, grid: dict, data_path: str):
    """The checkpoint's model, data and settings under the profile ``grid``, and its trainer."""
    config = checkpoint["config"]
    trained = [key for key in config.final_config_dict if key.startswith("content_profile_")]
    for key in {*trained, *grid}:
        config[key] = grid.get(key)  # the grid, nothing of the trained one's
    config["data_path"] = str(Path(data_path) / config["dataset"])  # this machine's copy
    config["show_progress"] = False
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = get_model("LLMEMF")(config, train_data._dataset).to(config["device"])
    # the profile's settings are re-chosen below; every learned weight must load
    missing, _ = model.load_state_dict(checkpoint["state_dict"], strict=False)
    if any(not name.startswith("content_profile.") for name in missing):
        raise ValueError(f"the checkpoint lacks weights of this model: {missing}")
    trainer = get_trainer(config["MODEL_TYPE"], "LLMEMF")(config, model)
    return config, trainer, train_data, valid_data, test_data


def tradeoff_runs(args, checkpoint: dict, grid: dict) -> tuple[list[Run], Config]:
    """Per tolerance, the row of the settings of ``grid`` it chooses on validation, tested."""
    config, trainer, train_data, valid_data, test_data = rebuilt(checkpoint, grid, args.data_path)
    if trainer.model.content_profile is None:
        raise SystemExit(f"{args.label}: no content profile to choose")
    settings, values, cold_values = validate_settings(trainer, valid_data)
    runs = []
    for tolerance in args.tolerances:
        chosen = apply_choice(trainer.model, settings, values, cold_values, tolerance)
        print(f"[profile-tradeoff] tolerance {tolerance:g}: " + "; ".join(chosen), flush=True)
        started = time.perf_counter()
        result = trainer.evaluate(test_data, load_best_model=False)
        run = Run(f"{args.row_label} tol{tolerance:g}", "LLMEMF", config["seed"])
        run.config = {**grid, "content_profile_cold_tolerance": tolerance, "chosen": chosen}
        run.eval_seconds = [time.perf_counter() - started]  # the test's, as the benchmark's
        run.test_result = {key: float(value) for key, value in result.items()}
        run.cases = trainer.last_cases
        attach_train_counts(run.cases, train_data._dataset)
        runs.append(run)
    return runs, config


def with_runs(specs: list[str], dataset: str) -> list[Run]:
    """``DIR:STEM:LABEL:SEED`` each: a finished benchmark row."""
    rows = []
    for spec in specs:
        directory, stem, label, seed = spec.rsplit(":", 3)
        finished = finished_runs(Path(directory), stem, dataset)
        if (label, int(seed)) not in finished:
            raise SystemExit(f"--with {spec}: no finished row {label} seed {seed} in {stem}")
        rows.append(finished[(label, int(seed))])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a trained LLMEMF's best checkpoint (.pth)")
    parser.add_argument("--data-path", default="dataset", help="the folder of the dataset's folder")
    parser.add_argument(
        "--label",
        default="LLMEMF-ids+text-cold-mixture",
        help="the benchmark label whose profile grid is searched (bench/specs.py)",
    )
    parser.add_argument(
        "--tolerances",
        type=float,
        nargs="+",
        default=[0.0, 0.01, 0.02],
        help="content_profile_cold_tolerance values; 0 alone for a label without cold items",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="content_profile_* values over the label's, e.g. "
        "content_profile_warm_temperatures=[0.1,0.2,0.4]",
    )
    parser.add_argument(
        "--row-label", help="the rows' label before ' tol<tolerance>' (default: --label)"
    )
    parser.add_argument(
        "--with",
        dest="with_rows",
        nargs="*",
        default=[],
        metavar="DIR:STEM:LABEL:SEED",
        help="finished rows to show beside, from a benchmark's or this script's json",
    )
    parser.add_argument("--out", default="out")
    parser.add_argument("--name", required=True, help="stem of the md / json / cases files")
    args = parser.parse_args(argv)
    if args.label not in VARIANTS:
        parser.error(f"--label {args.label}: not a benchmark label")
    args.row_label = args.row_label or args.label
    grid = profile_grid(args.label, parse_set(args.set)[0])
    if not grid["content_profile_cold_offsets"] and any(args.tolerances):
        parser.error(f"--label {args.label} scores no item by content alone: --tolerances 0")
    checkpoint = load_checkpoint(args.checkpoint, map_location="cpu")
    rows = with_runs(args.with_rows, checkpoint["config"]["dataset"])  # before the long pass
    runs, config = tradeoff_runs(args, checkpoint, grid)
    command = shlex.join(sys.argv[1:] if argv is None else argv)
    settings = (
        f"Rows `{args.row_label} tol*`: the weights of {Path(args.checkpoint).name}, the profile "
        f"re-chosen on validation at each tolerance (`python benchmarks/profile_tradeoff.py "
        f"{command}`); the others are finished rows (--with) of a benchmark or of this script; the "
        "reference is the row with the best validation score."
    )
    rows += runs
    Path(args.out).mkdir(parents=True, exist_ok=True)
    dataset_dir = Path(args.data_path) / config["dataset"]
    write_files(Path(args.out), args.name, rows, dataset_dir, config["protocol"], settings)
    print(f"[profile-tradeoff] wrote {Path(args.out) / args.name}.md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
