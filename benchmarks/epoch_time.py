"""LLMEMF against SASRec at the same hidden size and batch size: training epoch, convergence, memory.

    python benchmarks/epoch_time.py --users 8000 --items-per-group 4200 --batches 10
    python benchmarks/epoch_time.py --dataset dataset/llmemf_demo --converge
    python benchmarks/epoch_time.py --users 60000 --items-per-group 4200 --batches 50 --device cuda --amp

Each variant (``--variants``: SASRec, LLMEMF with 1 or 2 layers, LLMEMF trained on RecBole's
prefix rows as before per-position training) runs in its own process on the same data, so the
ratios come from one run. Data: ``--dataset FOLDER`` (e.g. the demo of ``llmemf-data synthetic
--out dataset``), or a generated two-domain catalog (``--items-per-group`` x 12 groups per domain;
4200 gives 50.4k + 50.4k items, Movie-Book has about 37k + 64k).

Measured per variant: seconds per training epoch (forward, backward, Adam step), timed over
``--batches`` batches (0: the whole epoch) and scaled to the epoch's batches, since a batch of
prefix rows and a batch of whole sequences hold different numbers of (history, target) pairs while
every variant trains on the same pairs (wall time, and on a CPU the process's CPU time, which other
jobs on a shared machine do not inflate); the whole test evaluation through RecBole's (domain-aware)
trainer; peak memory (resident memory; on CUDA the GPU memory PyTorch allocated). ``--converge``
instead trains with the protocol's early stopping (validation FullMRR every epoch) and reports the
wall time to the best validation epoch, training and validation included. ``--amp`` trains under
autocast with a gradient scaler, as RecBole's ``enable_amp`` / ``enable_scaler`` do.
Prints figures last, ratios over SASRec's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

# label -> (model, config overrides); LLMEMF's yaml defaults: 1 layer, per-position training
VARIANTS = {
    "SASRec": ("SASRec", {}),
    "LLMEMF": ("LLMEMF", {}),
    "LLMEMF-2layers": ("LLMEMF", {"n_layers": 2}),
    "LLMEMF-seqbatch": ("LLMEMF", {"train_batch_pairs": False}),
    "LLMEMF-prefix": ("LLMEMF", {"train_per_position": False}),
    "LLMEMF-2layers-prefix": ("LLMEMF", {"n_layers": 2, "train_per_position": False}),
    "LLMEMF-neg1000": ("LLMEMF", {"loss_negatives": 1000}),  # sampled softmax (issue 28)
    "LLMEMF-neg4000": ("LLMEMF", {"loss_negatives": 4000}),
}


def prepare(label: str, data_path: str, dataset: str, hidden: int, device: str):
    import recbole.utils
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    import recbole_llmemf  # noqa: F401  registers LLMEMF and the domain-aware trainers

    model_name, overrides = VARIANTS[label]
    sys.argv = sys.argv[:1]
    config = Config(
        model=model_name,
        dataset=dataset,
        config_dict={
            "data_path": data_path,
            "hidden_size": hidden,
            "inner_size": hidden,
            "state": "WARNING",
            "show_progress": False,
            "use_gpu": device == "cuda",
            **overrides,
        },
    )
    recbole.utils.init_seed(config["seed"], True)
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = recbole.utils.get_model(model_name)(config, train_data._dataset).to(config["device"])
    # Importing RecBole's sequential models runs sine.py's set_detect_anomaly(True) (sine.py L25),
    # which more than doubles a SASRec batch on a CPU; LLMEMF's lookup never imports that module.
    # Off for every variant, so that the models are compared, not that flag.
    torch.autograd.set_detect_anomaly(False)
    # looked up now, not imported: a name imported before recbole_llmemf is RecBole's original
    trainer = recbole.utils.get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    return config, model, trainer, (train_data, valid_data, test_data)


def measure(
    label: str, data_path: str, dataset: str, hidden: int, batches: int, device: str, amp: bool
) -> dict:
    import torch

    config, model, trainer, (train_data, _, test_data) = prepare(
        label, data_path, dataset, hidden, device
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device, enabled=amp)

    def train_step(batch) -> None:
        with torch.autocast(device_type=device, enabled=amp):
            loss = model.calculate_loss(batch.to(config["device"]))
            loss = sum(loss) if isinstance(loss, tuple) else loss
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    # one untimed batch for warm-up (allocator, CUDA context)
    model.train()
    epoch_batches = len(train_data)
    timed = batches if batches else epoch_batches
    train_batches = list(islice(train_data, timed + 1))
    train_step(train_batches[0])
    timed_batches = train_batches[1:] or train_batches
    start, cpu_start = _synchronized_clock(device), time.process_time()
    for batch in timed_batches:
        train_step(batch)
    train_s = (_synchronized_clock(device) - start) / len(timed_batches)
    train_cpu_s = (time.process_time() - cpu_start) / len(timed_batches)
    start = _synchronized_clock(device)
    trainer.evaluate(test_data, load_best_model=False)
    eval_s = _synchronized_clock(device) - start
    figures = {
        "train_s_per_batch": train_s,
        "batches_per_epoch": epoch_batches,
        "train_s_per_epoch": train_s * epoch_batches,
        "train_cpu_s_per_epoch": train_cpu_s * epoch_batches,
        "test_evaluation_s": eval_s,
    }
    return figures | _memory(device)


def converge(label: str, data_path: str, dataset: str, hidden: int, device: str) -> dict:
    """RecBole's fit loop (train, validate, early stopping), timed epoch by epoch."""
    from recbole.utils import early_stopping

    config, _, trainer, (train_data, valid_data, _) = prepare(
        label, data_path, dataset, hidden, device
    )
    best, patience, history = -float("inf"), 0, []
    cpu = []
    for epoch in range(config["epochs"]):
        start, cpu_start = _synchronized_clock(device), time.process_time()
        trainer._train_epoch(train_data, epoch)
        trained = _synchronized_clock(device)
        score, _ = trainer._valid_epoch(valid_data)
        history.append((trained - start, _synchronized_clock(device) - trained, score))
        cpu.append(time.process_time() - cpu_start)
        best, patience, stop, _ = early_stopping(score, best, patience, config["stopping_step"])
        if stop:
            break
    scores = [score for _, _, score in history]
    best_epoch = max(range(len(scores)), key=lambda e: (scores[e], -e))  # the first best epoch
    elapsed = [train + valid for train, valid, _ in history]
    return {
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "best_valid_mrr": scores[best_epoch],
        "s_to_best_epoch": sum(elapsed[: best_epoch + 1]),
        "cpu_s_to_best_epoch": sum(cpu[: best_epoch + 1]),
        "train_s_per_epoch": sum(train for train, _, _ in history) / len(history),
        "valid_s_per_epoch": sum(valid for _, valid, _ in history) / len(history),
        "valid_mrr_per_epoch": [round(score, 4) for score in scores],
    } | _memory(device)


def _memory(device: str) -> dict:
    import torch

    figures = {
        "threads": torch.get_num_threads(),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    if device == "cuda":
        figures["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return figures


def _synchronized_clock(device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def run_variants(args, data_path: str, dataset: str) -> dict:
    figures = {}
    for label in args.variants.split(","):
        command = (
            [
                sys.executable,
                __file__,
                "--worker",
                label,
                data_path,
                dataset,
                f"--hidden={args.hidden}",
                f"--batches={args.batches}",
                f"--device={args.device}",
            ]
            + (["--amp"] if args.amp else [])
            + (["--converge"] if args.converge else [])
        )
        with tempfile.TemporaryDirectory() as workdir:  # RecBole writes log/ and saved/ here
            out = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
        if out.returncode:
            sys.exit(f"{label} failed:\n{out.stderr[-4000:]}")
        figures[label] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{label}: {json.dumps(figures[label])}", flush=True)  # kept if a later one fails
    return figures


def report(args, figures: dict, what: str) -> None:
    precision = "amp" if args.amp else "fp32"
    threads = {values.pop("threads") for values in figures.values()}
    print(f"{what}, hidden {args.hidden}, batch 256")
    print(f"device: {args.device}, {precision}, torch threads: {threads.pop()}")
    for label, values in figures.items():
        for key, value in values.items():
            shown = f"{value:.4f}" if isinstance(value, float) else value
            print(f"{label}_{key}: {shown}")
    sas = figures.get("SASRec")
    if sas is None:
        return
    if args.converge:
        keys = ["train_s_per_epoch", "s_to_best_epoch", "cpu_s_to_best_epoch"]
    else:
        keys = ["train_s_per_epoch", "train_cpu_s_per_epoch", "test_evaluation_s"]
    keys.append("peak_gpu_gib" if args.device == "cuda" else "peak_rss_gib")
    for label, values in figures.items():
        if label != "SASRec":
            for key in keys:
                print(f"{key}_ratio_{label}_over_SASRec: {values[key] / sas[key]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="folder of an existing dataset, e.g. dataset/llmemf_demo")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items-per-group", type=int, default=2_000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument(
        "--feature-dim", type=int, default=512, help="width of the frozen vectors (CLIP: 512)"
    )
    parser.add_argument("--batches", type=int, default=20, help="timed batches; 0: whole epoch")
    parser.add_argument("--variants", default="SASRec,LLMEMF,LLMEMF-2layers,LLMEMF-prefix")
    parser.add_argument("--converge", action="store_true", help="train to early stopping")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true", help="mixed precision training (CUDA)")
    parser.add_argument(
        "--worker", nargs=3, metavar=("VARIANT", "PATH", "NAME"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        label, data_path, dataset = args.worker
        if args.converge:
            figures = converge(label, data_path, dataset, args.hidden, args.device)
        else:
            figures = measure(
                label, data_path, dataset, args.hidden, args.batches, args.device, args.amp
            )
        print(json.dumps(figures))
        return
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    if args.dataset:
        folder = Path(args.dataset).resolve()
        figures = run_variants(args, str(folder.parent), folder.name)
        report(args, figures, f"dataset: {folder.name}")
        return
    from recbole_llmemf.dataset_tools.synthetic import SyntheticSpec, generate

    with tempfile.TemporaryDirectory() as folder:
        spec = SyntheticSpec(
            name="bench",
            n_users=args.users,
            items_per_group=args.items_per_group,
            feature_dim=args.feature_dim,
        )
        generate(spec, folder)
        figures = run_variants(args, folder, "bench")
    items = 2 * 12 * args.items_per_group
    report(args, figures, f"catalog: {items} items, {args.users} users")


if __name__ == "__main__":
    main()
