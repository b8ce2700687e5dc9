"""Time to load an item feature matrix: atomic text file vs its memory-mapped binary copy.

    python benchmarks/feature_loading.py --items 100000 --dim 512

Writes a random matrix as a RecBole atomic feature file in a temporary folder, reads it once (text
parse, which also writes the binary copy), then again (binary). Prints the figures last.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from recbole_llmemf.data.fileformat.item_vectors import read_item_vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.itememb_img"
        with open(path, "w", encoding="utf-8") as file:
            file.write("item_id:token\timg_emb:float_seq\n")
            for item in range(args.items):
                vector = rng.standard_normal(args.dim).astype(np.float32)
                file.write(f"i{item}\t{' '.join(f'{v:.6f}' for v in vector)}\n")
        start = time.perf_counter()
        read_item_vectors(str(path))
        text_seconds = time.perf_counter() - start
        start = time.perf_counter()
        vectors = read_item_vectors(str(path))
        np.asarray(vectors.matrix).sum()  # touch every page of the memory map
        binary_seconds = time.perf_counter() - start
    print(f"matrix: {args.items} x {args.dim}")
    print(f"text_load_s: {text_seconds:.2f}")
    print(f"binary_load_s: {binary_seconds:.3f}")
    print(f"text_over_binary: {text_seconds / binary_seconds:.1f}")


if __name__ == "__main__":
    main()
