"""Throughput and peak memory of ``llmemf-recommend`` on a generated catalog.

    OMP_NUM_THREADS=1 python benchmarks/recommend.py --users 100000 --items 100000

Generates the synthetic two-domain data set at that size (``llmemf-data synthetic``'s generator),
builds an untrained model (scores cost the same whatever the weights) and saves it as RecBole's
checkpoint, then runs ``llmemf-recommend`` on it in its own process, so its peak memory is measured
alone. Prints the figures last: users/s of the scoring (chunks, masks, top-k, TSV; wall clock), the
time to load the checkpoint and data, the recommend process's wall and CPU seconds (on a shared
machine CPU seconds say more) and its peak RSS (and peak GPU memory on CUDA).
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import recbole_llmemf  # noqa: F401  first: RecBole's compat fixes, LLMEMF

# isort: split
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer

from recbole_llmemf.dataset_tools.synthetic import SyntheticSpec, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000, help="both domains together")
    parser.add_argument("--model", default="LLMEMF")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("-k", "--top-k", type=int, default=10)
    parser.add_argument("--chunk-users", type=int, default=1024)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config parses the command line too
    n_groups = 50
    spec = SyntheticSpec(
        name="recbench",
        n_users=args.users,
        n_groups=n_groups,
        items_per_group=args.items // (2 * n_groups),
        min_len=5,
        max_len=8,
        feature_dim=64,
    )
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        generate(spec, folder)
        print(f"generated {spec.n_users} users in {time.perf_counter() - start:.0f} s", flush=True)
        checkpoint = save_untrained_checkpoint(args, spec.name, folder)
        command = [
            sys.executable,
            "-m",
            "llmemf_cli.recommend",
            checkpoint,
            "--out",
            str(Path(folder) / "recommendations.tsv"),
            "-k",
            str(args.top_k),
            "--chunk-users",
            str(args.chunk_users),
            "--device",
            args.device,
            "--no-progress",
        ]
        start = time.perf_counter()
        output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=folder)
        total = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the recommend process alone
    peak_rss = usage.ru_maxrss / 2**20  # KiB -> GiB
    summary = output.stdout.strip().splitlines()[-1]
    users_per_s = float(re.search(r"\(([\d.]+) users/s", summary).group(1))
    loaded = re.search(r"after loading .* in ([\d.]+) s", summary)
    print(summary)
    print(
        f"catalog: {args.users} users x {spec.n_groups * spec.items_per_group * 2} items, {args.model}"
    )
    print(f"load_s: {float(loaded.group(1)):.1f}")
    print(f"recommend_process_s: {total:.1f}")
    print(f"recommend_process_cpu_s: {usage.ru_utime + usage.ru_stime:.1f}")
    print(f"users_per_s: {users_per_s:.0f}")
    print(f"peak_rss_gib: {peak_rss:.2f}")


def save_untrained_checkpoint(args, dataset: str, data_path: str) -> str:
    config = Config(
        model=args.model,
        dataset=dataset,
        config_dict={
            "data_path": data_path,
            "checkpoint_dir": str(Path(data_path) / "saved"),
            "hidden_size": args.hidden,
            "inner_size": args.hidden,
            "embedding_size": args.hidden,
            "use_gpu": args.device != "cpu",
            "state": "WARNING",
            "show_progress": False,
        },
    )
    data = create_dataset(config)
    train_data, _, _ = data_preparation(config, data)
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer._save_checkpoint(0, verbose=False)
    return trainer.saved_model_file


if __name__ == "__main__":
    main()
