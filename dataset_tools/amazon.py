"""``llmemf-data amazon``: two raw Amazon review categories -> RecBole cross-domain files.

Steps, as in the paper (§4, after Ma et al. 2019/2022):

1. users active in both domains (read by ``amazon_raw``, streaming the 2014 or 2018 release's gzip
   files; memory holds one user set and the common users' interactions, never the whole files);
2. one interaction per (user, item), the earliest;
3. iterated k-core: users with >= ``min_user_inter`` interactions, items with >= ``min_item_inter``,
   users with >= ``min_domain_items`` items of each domain, repeated until nothing changes;
4. each user's merged sequence in time order, ties broken by domain (source first), then ASIN;
5. the users whose sequences end latest form the test set, the next ones the valid set; their last
   item is the target. Training cases are every prefix of the other users' sequences and (by
   default) of the valid/test users' histories, so that user-based baselines know every user.

The input-error policy and the writer are shared with ``llmemf-data c2dsr`` (``importing``,
``dataset_files``).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbole_llmemf.data.fileformat.records import EVAL_SPLITS, SPLITS, Case, CrossDomainData, Item
from recbole_llmemf.dataset_tools.amazon_raw import (
    InteractionBuffer,
    find_category_files,
    read_common_users,
    read_meta,
)
from recbole_llmemf.dataset_tools.importing import (
    InputErrors,
    eval_case,
    finish,
    run_build,
    train_cases,
)

logger = logging.getLogger(__name__)


def earliest_per_pair(user: np.ndarray, item: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Mask keeping one interaction per (user, item): the earliest (then the first read)."""
    order = np.lexsort((np.arange(len(user)), time, item, user))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (user[order][1:] != user[order][:-1]) | (item[order][1:] != item[order][:-1])
    keep = np.zeros(len(user), dtype=bool)
    keep[order[first]] = True
    return keep


def k_core(
    user: np.ndarray,
    item: np.ndarray,
    domain: np.ndarray,
    *,
    min_user: int,
    min_item: int,
    min_domain: int,
) -> np.ndarray:
    """Mask of interactions left by the iterated filter (see the module docstring, step 3)."""
    keep = np.ones(len(user), dtype=bool)
    n_users, n_items = int(user.max(initial=-1)) + 1, int(item.max(initial=-1)) + 1
    while True:
        u, i, d = user[keep], item[keep], domain[keep]
        per_item = np.bincount(i, minlength=n_items)
        per_user = np.bincount(u, minlength=n_users)
        per_domain = [np.bincount(u[d == k], minlength=n_users) for k in (0, 1)]
        good = (per_item[i] >= min_item) & (per_user[u] >= min_user)
        good &= (per_domain[0][u] >= min_domain) & (per_domain[1][u] >= min_domain)
        if good.all():
            return keep
        keep[np.flatnonzero(keep)[~good]] = False


def merged_sequences(
    buffer: InteractionBuffer, keep: np.ndarray
) -> dict[str, list[tuple[str, float]]]:
    """Each user's interactions in time order; ties by domain (source first), then ASIN."""
    user = np.frombuffer(buffer.user, dtype=np.int32)[keep]
    item = np.frombuffer(buffer.item, dtype=np.int32)[keep]
    domain = np.frombuffer(buffer.domain, dtype=np.int8)[keep]
    time = np.frombuffer(buffer.time, dtype=np.float64)[keep]
    asins = np.array(list(buffer.items), dtype=object)
    user_names = np.array(list(buffer.users), dtype=object)
    asin_rank = np.argsort(np.argsort(asins.astype(str)))
    order = np.lexsort((asin_rank[item], domain, time, user))
    sequences: dict[str, list[tuple[str, float]]] = {}
    for u, i, t in zip(user[order], item[order], time[order]):
        sequences.setdefault(user_names[u], []).append((asins[i], float(t)))
    return sequences


def _share(n: int, ratio: float) -> int:
    return max(1, math.floor(n * ratio + 0.5)) if ratio > 0 else 0


def split_users(
    sequences: dict[str, list[tuple[str, float]]], valid_ratio: float, test_ratio: float
) -> dict[str, list[str]]:
    """Users whose sequences end latest -> test, the next ones -> valid (ties by user id)."""
    order = sorted(sequences, key=lambda user: (sequences[user][-1][1], user))
    n_test, n_valid = _share(len(order), test_ratio), _share(len(order), valid_ratio)
    if n_test + n_valid >= len(order):
        raise ValueError(
            f"{len(order)} users are too few for valid ratio {valid_ratio} and test "
            f"ratio {test_ratio}: no training user would be left"
        )
    cut = len(order) - n_test - n_valid
    return {
        "train": sorted(order[:cut]),
        "valid": sorted(order[cut : cut + n_valid]),
        "test": sorted(order[cut + n_valid :]),
    }


def build_cases(
    sequences: dict[str, list[tuple[str, float]]],
    users: dict[str, list[str]],
    max_len: int,
    eval_history_in_train: bool,
) -> tuple[dict[str, list[Case]], int]:
    """Benchmark cases and the number of training sequences they were cut from."""
    evaluated = {user for split in EVAL_SPLITS for user in users[split]}
    cases: dict[str, list[Case]] = {split: [] for split in SPLITS}
    n_sequences = 0
    for user in sorted(sequences):
        sequence = sequences[user]
        if user in evaluated:
            if not eval_history_in_train:
                continue
            sequence = sequence[:-1]
        cases["train"] += train_cases(user, sequence, max_len)
        n_sequences += len(sequence) > 1
    for split in EVAL_SPLITS:
        cases[split] = [eval_case(user, sequences[user], max_len) for user in users[split]]
    return cases, n_sequences


@dataclass(frozen=True)
class AmazonSpec:
    source: str
    target: str
    raw_dir: Path
    name: str
    domains: tuple[str, str]
    min_user_inter: int = 10
    min_item_inter: int = 10
    min_domain_items: int = 3
    valid_ratio: float = 0.15
    test_ratio: float = 0.15
    max_len: int = 15
    eval_history_in_train: bool = True


def build(spec: AmazonSpec, errors: InputErrors) -> tuple[CrossDomainData, dict]:
    """Read, filter and split; returns the dataset and what stats.json records about the build."""
    files = [find_category_files(spec.raw_dir, category) for category in (spec.source, spec.target)]
    buffer = read_common_users([reviews for reviews, _ in files], errors)
    logger.info(
        "%s reviews of %s users active in both domains",
        f"{len(buffer.user):,}",
        f"{len(buffer.users):,}",
    )
    keep, deduplicated = kept_interactions(buffer, spec)
    sequences = merged_sequences(buffer, keep)
    if not sequences:
        raise ValueError(
            "no user is left after filtering; lower --min-user-inter / "
            "--min-item-inter / --min-domain-items"
        )
    users = split_users(sequences, spec.valid_ratio, spec.test_ratio)
    cases, n_sequences = build_cases(sequences, users, spec.max_len, spec.eval_history_in_train)
    kept_items = np.unique(np.frombuffer(buffer.item, dtype=np.int32)[keep])
    items = _items(spec, files, buffer, kept_items, errors)
    interactions = [(u, asin, ts) for u in sorted(sequences) for asin, ts in sequences[u]]
    data = CrossDomainData(
        spec.name, spec.domains, items, interactions, cases, spec.max_len, n_sequences
    )
    return data, _build_info(spec, files, buffer, deduplicated, errors)


def kept_interactions(buffer: InteractionBuffer, spec: AmazonSpec) -> tuple[np.ndarray, int]:
    """Mask of the interactions that steps 2 and 3 keep, and how many step 2 kept.

    ASINs found in both categories are dropped before the k-core: domains must not overlap.
    """
    user = np.frombuffer(buffer.user, dtype=np.int32)
    item = np.frombuffer(buffer.item, dtype=np.int32)
    domain = np.frombuffer(buffer.domain, dtype=np.int8)
    keep = earliest_per_pair(user, item, np.frombuffer(buffer.time, dtype=np.float64))
    if buffer.conflicts:
        logger.warning(
            "%d ASINs occur in both categories and are dropped (domains must not overlap), e.g. %s",
            len(buffer.conflicts),
            sorted(buffer.conflicts)[:3],
        )
        conflict_ids = np.array([buffer.items[asin] for asin in buffer.conflicts])
        keep &= ~np.isin(item, conflict_ids)
    deduplicated = int(keep.sum())
    keep[keep] = k_core(
        user[keep],
        item[keep],
        domain[keep],
        min_user=spec.min_user_inter,
        min_item=spec.min_item_inter,
        min_domain=spec.min_domain_items,
    )
    return keep, deduplicated


def _build_info(
    spec: AmazonSpec,
    files: list[tuple[Path, Path | None]],
    buffer: InteractionBuffer,
    deduplicated: int,
    errors: InputErrors,
) -> dict:
    """What stats.json records about the build: options, input files and counts along the way."""
    return {
        "tool": "llmemf-data amazon",
        "source": spec.source,
        "target": spec.target,
        "files": [str(path) for pair in files for path in pair if path is not None],
        "min_user_inter": spec.min_user_inter,
        "min_item_inter": spec.min_item_inter,
        "min_domain_items": spec.min_domain_items,
        "valid_ratio": spec.valid_ratio,
        "test_ratio": spec.test_ratio,
        "eval_history_in_train": spec.eval_history_in_train,
        "interactions_of_common_users": len(buffer.user),
        "common_users": len(buffer.users),
        "after_deduplication": deduplicated,
        "asins_in_both_categories": len(buffer.conflicts),
        "skipped_lines": dict(errors.skipped),
    }


def _items(
    spec: AmazonSpec,
    files: list[tuple[Path, Path | None]],
    buffer: InteractionBuffer,
    kept_ids: np.ndarray,
    errors: InputErrors,
) -> list[Item]:
    """The kept items of each domain, sorted by ASIN, with their metadata where a file has it."""
    asins = list(buffer.items)
    items = []
    for d, (_, meta_path) in enumerate(files):
        wanted = sorted(asins[i] for i in kept_ids if buffer.item_domain[i] == d)
        if meta_path is None:
            logger.warning(
                "no metadata file for %s: items get no title", (spec.source, spec.target)[d]
            )
            meta = {}
        else:
            meta = read_meta(meta_path, set(wanted), errors)
            logger.info("%s: metadata for %d of %d items", meta_path.name, len(meta), len(wanted))
        items += [Item(asin, spec.domains[d], **meta.get(asin, {})) for asin in wanted]
    return items


def run(args: argparse.Namespace) -> int:
    """``llmemf-data amazon`` (its arguments: llmemf_cli/data/amazon.py)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.min_domain_items < 1:
        print("llmemf-data amazon: --min-domain-items must be at least 1", file=sys.stderr)
        return 2
    spec = AmazonSpec(
        source=args.source,
        target=args.target,
        raw_dir=Path(args.raw_dir),
        name=args.name or f"{args.source}_{args.target}".lower(),
        domains=tuple(args.domain_names or (args.source, args.target)),
        min_user_inter=args.min_user_inter,
        min_item_inter=args.min_item_inter,
        min_domain_items=args.min_domain_items,
        valid_ratio=args.valid_ratio,
        test_ratio=args.test_ratio,
        max_len=args.max_len,
        eval_history_in_train=args.eval_history_in_train,
    )
    built = run_build("amazon", build, spec, args.on_error)
    if built is None:
        return 1
    data, build_info = built
    return finish(data, args.out, "amazon", build_info)
