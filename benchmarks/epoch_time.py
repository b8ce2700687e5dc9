"""LLMEMF against SASRec at the same hidden size and batch size: train and full-ranking time, memory.

    python benchmarks/epoch_time.py --users 20000 --items-per-group 2000 --batches 20

Generates a synthetic two-domain dataset (``--items-per-group`` x 12 groups per domain; 2000 gives
24k + 24k items, Movie-Book has about 37k + 64k), then measures each model in its own process:
seconds per training batch (forward, backward, Adam step) over ``--batches`` batches, seconds per
full-ranking evaluation batch through RecBole's trainer, and the process's peak resident memory.
Per-batch times stand in for epoch times: both models see the same batches. Prints figures last.
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


def measure(model_name: str, data_path: str, hidden: int, batches: int) -> dict:
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    import recbole_llmemf  # noqa: F401  registers LLMEMF

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
            "use_gpu": False,
        },
    )
    init_seed(config["seed"], True)
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    model = get_model(model_name)(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for batch in islice(train_data, batches):
        loss = model.calculate_loss(batch)
        loss = sum(loss) if isinstance(loss, tuple) else loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_s = (time.perf_counter() - start) / batches
    model.eval()
    trainer.tot_item_num = test_data._dataset.item_num
    start = time.perf_counter()
    with torch.no_grad():
        for batch in islice(test_data, batches):
            trainer._full_sort_batch_eval(batch)
    eval_s = (time.perf_counter() - start) / batches
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"train_s_per_batch": train_s, "eval_s_per_batch": eval_s, "peak_rss_gib": peak_gib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items-per-group", type=int, default=2_000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument(
        "--feature-dim", type=int, default=512, help="width of the frozen vectors (CLIP: 512)"
    )
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "DATA_PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker[0], args.worker[1], args.hidden, args.batches)))
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
            ]
            out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=folder)
            figures[model] = json.loads(out.stdout.strip().splitlines()[-1])
    items = 2 * 12 * args.items_per_group
    print(f"catalog: {items} items, {args.users} users, hidden {args.hidden}, batch 256")
    for model, values in figures.items():
        for key, value in values.items():
            print(f"{model}_{key}: {value:.3f}")
    sas, emf = figures["SASRec"], figures["LLMEMF"]
    print(
        f"train_time_ratio_LLMEMF_over_SASRec: {emf['train_s_per_batch'] / sas['train_s_per_batch']:.2f}"
    )
    print(
        f"eval_time_ratio_LLMEMF_over_SASRec: {emf['eval_s_per_batch'] / sas['eval_s_per_batch']:.2f}"
    )
    print(f"peak_memory_ratio_LLMEMF_over_SASRec: {emf['peak_rss_gib'] / sas['peak_rss_gib']:.2f}")


if __name__ == "__main__":
    main()
