"""LLMEMF against SASRec at the same hidden size and batch size: train and full-ranking time, memory.

    python benchmarks/epoch_time.py --users 60000 --items-per-group 4200 --batches 10
    python benchmarks/epoch_time.py --users 60000 --items-per-group 4200 --batches 50 --device cuda --amp

Generates a synthetic two-domain dataset (``--items-per-group`` x 12 groups per domain; 4200 gives
50.4k + 50.4k items, Movie-Book has about 37k + 64k), then measures each model in its own process:
seconds per training batch (forward, backward, Adam step) over ``--batches`` batches, standing in
for epoch time since both models see the same batches; seconds for the full-ranking evaluation of
the whole test set through RecBole's (domain-aware) trainer; and peak memory: the process's
resident memory, and on CUDA the GPU memory PyTorch allocated. ``--amp`` trains under autocast with
a gradient scaler, as RecBole's ``enable_amp`` / ``enable_scaler`` do. Prints figures last.
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


def measure(
    model_name: str, data_path: str, hidden: int, batches: int, device: str, amp: bool
) -> dict:
    import recbole.utils
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    import recbole_llmemf  # noqa: F401  registers LLMEMF and the domain-aware trainers

    sys.argv = sys.argv[:1]
    config = Config(
        model=model_name,
        dataset="bench",
        config_dict={
            "data_path": data_path,
            "hidden_size": hidden,
            "inner_size": hidden,
            "state": "WARNING",
            "show_progress": False,
            "use_gpu": device == "cuda",
        },
    )
    recbole.utils.init_seed(config["seed"], True)
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    model = recbole.utils.get_model(model_name)(config, train_data._dataset).to(config["device"])
    # looked up now, not imported: a name imported before recbole_llmemf is RecBole's original
    trainer = recbole.utils.get_trainer(config["MODEL_TYPE"], model_name)(config, model)
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
    train_batches = list(islice(train_data, batches + 1))
    train_step(train_batches[0])
    start = _synchronized_clock(device)
    for batch in train_batches[1:]:
        train_step(batch)
    train_s = (_synchronized_clock(device) - start) / batches
    start = _synchronized_clock(device)
    trainer.evaluate(test_data, load_best_model=False)
    eval_s = _synchronized_clock(device) - start
    figures = {"train_s_per_batch": train_s, "test_evaluation_s": eval_s}
    figures["threads"] = torch.get_num_threads()
    figures["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if device == "cuda":
        figures["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return figures


def _synchronized_clock(device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items-per-group", type=int, default=2_000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument(
        "--feature-dim", type=int, default=512, help="width of the frozen vectors (CLIP: 512)"
    )
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true", help="mixed precision training (CUDA)")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "DATA_PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        figures = measure(*args.worker, args.hidden, args.batches, args.device, args.amp)
        print(json.dumps(figures))
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
        figures = {}
        for model in ("SASRec", "LLMEMF"):
            command = [
                sys.executable,
                __file__,
                "--worker",
                model,
                folder,
                f"--hidden={args.hidden}",
                f"--batches={args.batches}",
                f"--device={args.device}",
            ] + (["--amp"] if args.amp else [])
            out = subprocess.run(command, capture_output=True, text=True, cwd=folder)
            if out.returncode:
                sys.exit(f"{model} failed:\n{out.stderr[-4000:]}")
            figures[model] = json.loads(out.stdout.strip().splitlines()[-1])
    items = 2 * 12 * args.items_per_group
    precision = "amp" if args.amp else "fp32"
    print(f"catalog: {items} items, {args.users} users, hidden {args.hidden}, batch 256")
    threads = figures["SASRec"].pop("threads")
    figures["LLMEMF"].pop("threads")
    print(f"device: {args.device}, {precision}, torch threads: {threads}")
    for model, values in figures.items():
        for key, value in values.items():
            print(f"{model}_{key}: {value:.3f}")
    sas, emf = figures["SASRec"], figures["LLMEMF"]
    print(
        f"train_time_ratio_LLMEMF_over_SASRec: {emf['train_s_per_batch'] / sas['train_s_per_batch']:.2f}"
    )
    print(
        f"eval_time_ratio_LLMEMF_over_SASRec: {emf['test_evaluation_s'] / sas['test_evaluation_s']:.2f}"
    )
    memory = "peak_gpu_gib" if args.device == "cuda" else "peak_rss_gib"
    print(f"peak_memory_ratio_LLMEMF_over_SASRec: {emf[memory] / sas[memory]:.2f}")


if __name__ == "__main__":
    main()
