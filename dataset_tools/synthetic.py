"""A small two-domain dataset with known structure, generated offline and deterministically.

Items of both domains belong to latent taste groups shared across domains; each user follows one or
two groups and walks along a group's items in order, switching domain now and then. So:
- cross-domain taste: a user's items in X tell which group they like in Y;
- order: the next item is most often the successor of the user's last item of that domain;
- features: image and text vectors are noisy copies of the item's group centroid plus a code of the
  item's place on its group's walk, so neighbours in feature space are what comes next; some items
  have none; a noisier "title only" text without the place code stands for text without LLM
  enrichment (the paper's ablation).
Written as RecBole atomic files: ``.inter``, ``.item`` (domain, title), ``.itememb_img``,
``.itememb_txt``, ``.itememb_txtraw``, DMESR's MLLM views ``.itememb_llmimg``, ``.itememb_llmtxt``,
``.itememb_llmboth``, and the dataset's yaml beside them (loaded for every model,
recbole_llmemf.config.configurator).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbole_llmemf.data.fileformat.atomic import atomic_write, write_atomic_file

DOMAINS = ("Movie", "Book")
DATASET_YAML = """\
# Written by `llmemf-data synthetic`: the embedded two-domain demo dataset.
USER_ID_FIELD: user_id
ITEM_ID_FIELD: item_id
TIME_FIELD: timestamp
load_col:                       # (dict) Columns RecBole loads; titles stay in the file for the data tools.
  inter: [user_id, item_id, timestamp]
  item: [item_id, domain]
domain_field: domain            # (str) Item field naming each item's domain; enables domain-aware evaluation.
protocol: full                  # (str) Evaluation protocol, a file of recbole_llmemf/properties/protocol/.
"""


@dataclass(frozen=True)
class SyntheticSpec:
    name: str = "llmemf_demo"
    n_users: int = 1500
    items_per_group: int = 100  # per domain: 1,200 items each, room for 999 sampled negatives
    n_groups: int = 12
    min_len: int = 8
    max_len: int = 16
    feature_dim: int = 64
    missing_image: float = 0.1  # share of items without an image vector
    missing_text: float = 0.05
    place_frequencies: int = 16  # of the place codes; more frequencies, sharper neighbourhoods
    seed: int = 2026


def generate(spec: SyntheticSpec, out_dir: str | Path) -> Path:
    """Write the dataset ``spec.name`` into ``out_dir/spec.name`` and return that folder."""
    rng = np.random.default_rng(spec.seed)
    folder = Path(out_dir) / spec.name
    items = _items(spec)  # [(token, domain, group, rank)]
    _write_items(folder / f"{spec.name}.item", items)
    _write_features(folder, spec, items, rng)
    _write_interactions(folder / f"{spec.name}.inter", spec, items, rng)
    with atomic_write(folder / f"{spec.name}.yaml") as file:
        file.write(DATASET_YAML)
    return folder


def _items(spec: SyntheticSpec) -> list[tuple[str, int, int, int]]:
    return [
        (f"{DOMAINS[d][0]}{g:02d}{r:03d}", d, g, r)
        for d in range(2)
        for g in range(spec.n_groups)
        for r in range(spec.items_per_group)
    ]


def _write_items(path: Path, items) -> None:
    rows = [(tok, DOMAINS[d], f"{DOMAINS[d]} of taste {g} number {r}") for tok, d, g, r in items]
    write_atomic_file(path, ["item_id:token", "domain:token", "title:token_seq"], rows)


def _write_features(folder: Path, spec: SyntheticSpec, items, rng: np.random.Generator) -> None:
    centroids = rng.normal(size=(2, spec.n_groups, spec.feature_dim))
    shared = rng.normal(
        size=(spec.n_groups, spec.feature_dim)
    )  # what a group's X and Y items share
    place = _place_codes(spec, rng)  # [items_per_group, feature_dim]
    for kind, missing, suffix in (
        ("img", spec.missing_image, "itememb_img"),
        ("txt", spec.missing_text, "itememb_txt"),
    ):
        rows = []
        for token, d, g, r in items:
            if rng.random() < missing:
                continue
            vector = shared[g] + 0.7 * centroids[d, g] + 0.6 * rng.normal(size=spec.feature_dim)
            vector += place[r]
            rows.append((token, " ".join(f"{v:.5f}" for v in vector / np.linalg.norm(vector))))
        write_atomic_file(
            folder / f"{spec.name}.{suffix}",
            ["item_id:token", f"{kind}_emb:float_seq"],
            rows,
        )
    # The bare title says less than the "LLM-enriched" text: noisier, no order within the group.
    # Its own generator, so the other files do not depend on whether it is written.
    raw_rng = np.random.default_rng(spec.seed + 1)
    rows = []
    for token, d, g, _ in items:
        if raw_rng.random() < spec.missing_text:
            continue
        vector = shared[g] + 0.7 * centroids[d, g] + 1.5 * raw_rng.normal(size=spec.feature_dim)
        rows.append((token, " ".join(f"{v:.5f}" for v in vector / np.linalg.norm(vector))))
    write_atomic_file(
        folder / f"{spec.name}.itememb_txtraw", ["item_id:token", "txtraw_emb:float_seq"], rows
    )
    _write_llm_views(folder, spec, items, shared, centroids, place)


def _write_llm_views(folder: Path, spec: SyntheticSpec, items, shared, centroids, place) -> None:
    """DMESR's three MLLM descriptions (from the image, the text, both): coarse views of the
    group and the place, each with its own noise; their own generator, as the bare title's."""
    rng = np.random.default_rng(spec.seed + 2)
    for kind, noise, missing in (
        ("llmimg", 0.9, spec.missing_image),
        ("llmtxt", 0.9, spec.missing_text),
        ("llmboth", 0.6, max(spec.missing_image, spec.missing_text)),
    ):
        rows = []
        for token, d, g, r in items:
            if rng.random() < missing:
                continue
            vector = shared[g] + 0.7 * centroids[d, g] + 0.5 * place[r]
            vector = vector + noise * rng.normal(size=spec.feature_dim)
            rows.append((token, " ".join(f"{v:.5f}" for v in vector / np.linalg.norm(vector))))
        write_atomic_file(
            folder / f"{spec.name}.itememb_{kind}", ["item_id:token", f"{kind}_emb:float_seq"], rows
        )


def _place_codes(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """``[items_per_group, feature_dim]`` codes of the places on a group's walk.

    Each code holds several frequencies of one circle, so that two codes are close only for places
    a step or two apart: an item's vectors then tell what tends to come after it, which IDs of
    rarely seen items cannot. The codes have the norm of a standard normal vector.
    """
    n_frequencies = min(spec.place_frequencies, spec.feature_dim // 4)
    angle = 2 * np.pi * np.arange(spec.items_per_group) / spec.items_per_group
    phases = np.outer(angle, np.arange(1, n_frequencies + 1))
    waves = np.concatenate([np.cos(phases), np.sin(phases)], axis=1)
    basis = np.linalg.qr(rng.normal(size=(spec.feature_dim, 2 * n_frequencies)))[0]
    return waves @ basis.T * np.sqrt(spec.feature_dim / n_frequencies)


def _write_interactions(path: Path, spec: SyntheticSpec, items, rng: np.random.Generator) -> None:
    by_group = {
        (d, g): [tok for tok, dd, gg, _ in items if (dd, gg) == (d, g)]
        for d in range(2)
        for g in range(spec.n_groups)
    }
    rows = []
    for user in range(spec.n_users):
        tastes = rng.choice(spec.n_groups, size=2, replace=False)
        group, domain = tastes[0], int(rng.integers(2))
        last = {0: None, 1: None}  # last position walked in each domain
        for step in range(int(rng.integers(spec.min_len, spec.max_len + 1))):
            if rng.random() < 0.15:
                group = tastes[1] if group == tastes[0] else tastes[0]
            if rng.random() < 0.35:
                domain = 1 - domain
            position = _next_position(last[domain], spec, rng)
            last[domain] = position
            item = by_group[(domain, group)][position]
            rows.append((f"u{user:05d}", item, 1_600_000_000 + user * 1000 + step))
    write_atomic_file(path, ["user_id:token", "item_id:token", "timestamp:float"], rows)


def _next_position(last: int | None, spec: SyntheticSpec, rng: np.random.Generator) -> int:
    """Mostly the successor of the last item; sometimes a random item of the group."""
    if last is None or rng.random() < 0.3:
        return int(rng.integers(spec.items_per_group // 2))
    return (last + int(rng.integers(1, 3))) % spec.items_per_group


def run(args: argparse.Namespace) -> int:
    spec = SyntheticSpec(name=args.name, n_users=args.users, seed=args.seed)
    print(f"wrote {generate(spec, args.out)}")
    return 0
