"""Where an LLMEMF training epoch goes: torch.profiler over a few training batches.

Prints the operators with the most self CPU time, and the share of the batch spent loading data
(the loader's collate and per-position batching) against the model's forward, backward and step.

    OMP_NUM_THREADS=1 python benchmarks/profile_epoch.py --dataset dataset/food_kitchen --hidden 64
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from epoch_time import VARIANTS, prepare


def profile(args: argparse.Namespace) -> None:
    import torch
    from torch.profiler import ProfilerActivity, record_function

    folder = Path(args.dataset)
    config, model, _, (train_data, _, _) = prepare(
        args.variant, str(folder.parent), folder.name, args.hidden, "cpu"
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    loader = iter(train_data)
    step(model, optimizer, next(loader))  # warm-up
    load_s = model_s = 0.0
    with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(args.batches):
            start = time.perf_counter()
            with record_function("load batch"):
                batch = next(loader)
            middle = time.perf_counter()
            with record_function("train step"):
                step(model, optimizer, batch)
            load_s += middle - start
            model_s += time.perf_counter() - middle
    print(
        f"{args.variant}, {torch.get_num_threads()} thread(s), {args.batches} batches of "
        f"train_batch_size {config['train_batch_size']}"
    )
    print(
        f"loading {load_s / args.batches:.3f} s / batch, model {model_s / args.batches:.3f} s / batch"
    )
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


def step(model, optimizer, batch) -> None:
    loss = model.calculate_loss(batch)
    loss = sum(loss) if isinstance(loss, tuple) else loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", required=True, help="folder of a dataset, e.g. dataset/food_kitchen"
    )
    parser.add_argument("--variant", default="LLMEMF", choices=sorted(VARIANTS))
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20, help="profiled training batches")
    parser.add_argument("--rows", type=int, default=15, help="operators listed")
    profile(parser.parse_args())


if __name__ == "__main__":
    main()
