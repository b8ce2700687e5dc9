"""``llmemf-data c2dsr``: import a public C2DSR split into RecBole cross-domain files.

Input folder (names of the C2DSR release; the crystal22/C2DSR names are accepted too):

- ``Alist.txt`` / ``Blist.txt``: ``raw_id<TAB>ASIN<TAB>local_index``; a domain-B item's index in the
  split files is ``|A| + local_index``;
- ``validdata_new.txt`` / ``testdata_new.txt`` and, when published, ``traindata_new.txt``:
  ``user<TAB>sample_id<TAB>item|ts|date|<TAB>...``; the file order is not time order, so the
  entries are sorted stably by ts and the last one is the target (C2DSR's ``read_test_data``);
- optional ``userlist.txt`` (``reviewerID<TAB>user_index``), ``titles*.tsv`` (``asin<TAB>title``).

The valid/test targets are kept exactly. Item tokens are ASINs, user tokens reviewer ids when the
user list is there. Without the train file (it is not public) the training cases are rebuilt from
the valid/test users' histories (every prefix, targets removed); the output and stats file say so
loudly.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from recbole_llmemf.data.fileformat.records import EVAL_SPLITS, SPLITS, Case, CrossDomainData, Item
from recbole_llmemf.dataset_tools.c2dsr_files import (
    SPLIT_FILE_NAMES,
    Sample,
    find_files,
    item_index,
    read_item_list,
    read_samples,
    read_titles,
    read_userlist,
)
from recbole_llmemf.dataset_tools.importing import (
    InputErrors,
    eval_case,
    finish,
    run_build,
    train_cases,
)

logger = logging.getLogger(__name__)


def merged_interactions(samples: Sequence[Sample]) -> list[tuple[str, str, float]]:
    """Every (user, item, ts) once; users sorted, each user's entries stable-sorted by ts."""
    per_user: dict[str, dict[tuple[str, float], None]] = defaultdict(dict)
    for sample in samples:
        per_user[sample.user].update(dict.fromkeys(sample.sequence))
    return [
        (user, item, ts)
        for user in sorted(per_user)
        for item, ts in sorted(per_user[user], key=lambda entry: entry[1])
    ]


def build_cases(
    samples: dict[str, list[Sample]], max_len: int, eval_history_in_train: bool
) -> tuple[dict[str, list[Case]], int]:
    """Cases of each split and the number of training sequences; see the module docstring."""
    histories = (
        [s for split in EVAL_SPLITS for s in samples[split]] if eval_history_in_train else []
    )
    sequences = [s.sequence for s in samples.get("train", [])] + [
        s.sequence[:-1] for s in histories
    ]
    users = [s.user for s in samples.get("train", [])] + [s.user for s in histories]
    cases = {
        "train": [c for user, seq in zip(users, sequences) for c in train_cases(user, seq, max_len)]
    }
    for split in EVAL_SPLITS:
        cases[split] = [eval_case(s.user, s.sequence, max_len) for s in samples[split]]
    return cases, sum(len(sequence) > 1 for sequence in sequences)


def history_lengths(samples: Sequence[Sample]) -> dict[str, float]:
    lengths = [len(sample.sequence) - 1 for sample in samples]
    return {
        "min": min(lengths),
        "median": statistics.median(lengths),
        "max": max(lengths),
        "mean": round(statistics.fmean(lengths), 2),
    }


def default_domains(input_dir: Path) -> tuple[str, str]:
    """``food_kitchen`` / ``Food-Kitchen`` -> (Food, Kitchen); otherwise (A, B)."""
    parts = [part for part in re.split(r"[_\-\s]+", input_dir.resolve().name) if part]
    return tuple(p.capitalize() for p in parts) if len(parts) == 2 else ("A", "B")


@dataclass(frozen=True)
class C2DSRSpec:
    input_dir: Path
    name: str
    domains: tuple[str, str]
    max_len: int = 15
    titles: tuple[str, ...] | None = None  # None: titles*.tsv of the input folder
    eval_history_in_train: bool | None = None  # None: only when the train file is missing


def build(spec: C2DSRSpec, errors: InputErrors) -> tuple[CrossDomainData, dict]:
    """Read the split folder; returns the dataset and what stats.json records about the build."""
    files = find_files(spec.input_dir, spec.titles)
    lists = [read_item_list(path, errors) for path in files.lists]
    items, size_a = item_index(lists)
    users = read_userlist(files.userlist, errors) if files.userlist else {}
    samples = {
        split: read_samples(path, items, users, errors) for split, path in files.splits.items()
    }
    for split in EVAL_SPLITS:
        if not samples[split]:
            raise ValueError(f"{files.splits[split]}: no sample")
    has_train = "train" in samples
    with_history = _eval_history_in_train(spec, has_train)
    cases, n_sequences = build_cases(samples, spec.max_len, with_history)
    titles = read_titles(files.titles, errors)
    item_rows = [
        Item(asin, spec.domains[domain], titles.get(asin, ""))
        for _, (asin, domain) in sorted(items.items())
    ]
    all_samples = [sample for split in SPLITS for sample in samples.get(split, [])]
    max_sample_id = max(sample.sample_id for sample in all_samples)
    notes = [] if has_train else [_rebuilt_training_note(spec, samples, max_sample_id)]
    _warn_unknown_users(all_samples, users, files.userlist)
    titled = _log_titles(item_rows, titles)
    data = CrossDomainData(
        spec.name,
        spec.domains,
        item_rows,
        merged_interactions(all_samples),
        cases,
        spec.max_len,
        n_sequences,
        notes,
    )
    build_info = {
        "tool": "llmemf-data c2dsr",
        "input_dir": str(spec.input_dir),
        "files": [
            str(p)
            for p in (*files.lists, *files.splits.values(), files.userlist, *files.titles)
            if p
        ],
        "train_file": has_train,
        "eval_history_in_train": with_history,
        "domain_a_size": size_a,
        "samples": {split: len(found) for split, found in samples.items()},
        "history_length": {split: history_lengths(samples[split]) for split in EVAL_SPLITS},
        "max_sample_id": max_sample_id,
        "titled_items": titled,
        "skipped_lines": dict(errors.skipped),
    }
    return data, build_info


def _eval_history_in_train(spec: C2DSRSpec, has_train: bool) -> bool:
    """Whether the valid/test histories are training cases too (by default: without a train file).

    Raises:
        ValueError: no train file and no histories, so no training case at all.
    """
    with_history = (
        (not has_train) if spec.eval_history_in_train is None else spec.eval_history_in_train
    )
    if not has_train and not with_history:
        raise ValueError(
            f"{spec.input_dir}: no train file, so the valid/test histories are the only "
            "training data; drop --no-eval-history-in-train"
        )
    return with_history


def _rebuilt_training_note(
    spec: C2DSRSpec, samples: dict[str, list[Sample]], max_sample_id: int
) -> str:
    """The loud note of a build without C2DSR's train file (in stats.md and on stderr)."""
    eval_samples = [s for split in EVAL_SPLITS for s in samples[split]]
    unpublished = max_sample_id + 1 - len(eval_samples)
    hint = (
        f" (its sample ids leave {unpublished:,} training samples unpublished)"
        if unpublished > 0
        else ""
    )
    return (
        f"no train file ({' / '.join(SPLIT_FILE_NAMES['train'])}) in {spec.input_dir}: the "
        f"training cases were REBUILT from the {len(eval_samples):,} valid/test users' "
        f"histories (every prefix, their targets removed). This is not C2DSR's training "
        f"set{hint}; results trained on it are not comparable with numbers trained on C2DSR's "
        "train file."
    )


def _warn_unknown_users(
    samples: Sequence[Sample], users: dict[int, str], userlist: Path | None
) -> None:
    """Users of the split files that the user list lacks keep ``user<index>`` tokens: say so."""
    unknown_users = sorted({s.user for s in samples} - set(users.values())) if users else []
    if unknown_users:
        logger.warning(
            "%d user indexes are not in %s; their tokens are user<index>, e.g. %s",
            len(unknown_users),
            userlist,
            unknown_users[:3],
        )


def _log_titles(item_rows: Sequence[Item], titles: dict[str, str]) -> int:
    """Log how many items got a title; returns that number."""
    titled = sum(1 for item in item_rows if item.title)
    logger.info(
        "titles for %d of %d items (%d titled ASINs are in neither list)",
        titled,
        len(item_rows),
        len(set(titles) - {item.token for item in item_rows}),
    )
    return titled


def run(args: argparse.Namespace) -> int:
    """``llmemf-data c2dsr`` (its arguments: llmemf_cli/data/c2dsr.py)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    input_dir = Path(args.input_dir)
    spec = C2DSRSpec(
        input_dir=input_dir,
        name=args.name or re.sub(r"[\s\-]+", "_", input_dir.resolve().name).lower(),
        domains=tuple(args.domain_names or default_domains(input_dir)),
        max_len=args.max_len,
        titles=None if args.titles is None else tuple(args.titles),
        eval_history_in_train=args.eval_history_in_train,
    )
    built = run_build("c2dsr", build, spec, args.on_error)
    if built is None:
        return 1
    data, build_info = built
    for split in EVAL_SPLITS:
        lengths = build_info["history_length"][split]
        print(
            f"{split}: {build_info['samples'][split]:,} samples, history length min / median / "
            f"max (mean): {lengths['min']} / {lengths['median']:g} / {lengths['max']} "
            f"({lengths['mean']})"
        )
    return finish(data, args.out, "c2dsr", build_info)
