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

import logging
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmemf_cli.parsers import build_c2dsr_parser as build_parser
from recbole_llmemf.dataset_tools.amazon import (
    InputErrors,
    clean_text,
    eval_case,
    finish,
    input_lines,
    run_build,
    train_cases,
)
from recbole_llmemf.dataset_tools.checks import EVAL_SPLITS, SPLITS, Case, CrossDomainData, Item

logger = logging.getLogger(__name__)

LIST_FILE_NAMES = (("Alist.txt", "items_a.txt"), ("Blist.txt", "items_b.txt"))
SPLIT_FILE_NAMES = {
    "train": ("traindata_new.txt", "train_new.txt"),
    "valid": ("validdata_new.txt", "val_new.txt"),
    "test": ("testdata_new.txt", "test_new.txt"),
}
USERLIST_FILE_NAME = "userlist.txt"
TITLE_FILE_PATTERN = "titles*.tsv"


@dataclass(frozen=True)
class C2DSRFiles:
    lists: tuple[Path, Path]
    splits: dict[str, Path]  # "train" only when present
    userlist: Path | None
    titles: tuple[Path, ...]


def find_files(input_dir: str | Path, titles: Sequence[str] | None = None) -> C2DSRFiles:
    """The files of a C2DSR split folder; ``titles=None`` picks ``titles*.tsv`` there."""
    folder = Path(input_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")

    def first(names: Sequence[str], required: bool) -> Path | None:
        found = next((folder / n for n in names if (folder / n).is_file()), None)
        if found is None and required:
            raise FileNotFoundError(f"{folder}: none of {', '.join(names)} found")
        return found

    lists = tuple(first(names, True) for names in LIST_FILE_NAMES)
    splits = {split: first(names, split != "train") for split, names in SPLIT_FILE_NAMES.items()}
    title_files = (
        sorted(folder.glob(TITLE_FILE_PATTERN)) if titles is None else [Path(t) for t in titles]
    )
    return C2DSRFiles(
        lists=lists,
        splits={split: path for split, path in splits.items() if path is not None},
        userlist=first([USERLIST_FILE_NAME], False),
        titles=tuple(title_files),
    )


def read_item_list(path: Path, errors: InputErrors) -> dict[int, str]:
    """``local_index -> ASIN`` of an ``Alist.txt`` / ``Blist.txt`` file."""
    items: dict[int, str] = {}
    for lineno, line in input_lines(path, path.name):
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
            errors.report(
                path, lineno, f"expected raw_id<TAB>ASIN<TAB>index, got {len(fields)} fields"
            )
        elif not fields[2].strip().isdigit():
            errors.report(path, lineno, f"non-integer item index {fields[2]!r}")
        elif int(fields[2]) in items:
            errors.report(path, lineno, f"item index {int(fields[2])} is listed twice")
        elif not fields[1].strip():
            errors.report(path, lineno, "missing field 'ASIN'")
        else:
            items[int(fields[2])] = fields[1].strip()
    return items


def item_index(lists: Sequence[dict[int, str]]) -> tuple[dict[int, tuple[str, int]], int]:
    """Global index of the split files -> (ASIN, domain 0/1), and |A|, the offset of B's indexes."""
    size_a = max(lists[0], default=-1) + 1
    table = {index: (asin, 0) for index, asin in lists[0].items()}
    table.update({size_a + index: (asin, 1) for index, asin in lists[1].items()})
    return table, size_a


def read_userlist(path: Path, errors: InputErrors) -> dict[int, str]:
    users: dict[int, str] = {}
    for lineno, line in input_lines(path, path.name):
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 2 or not fields[1].strip().isdigit():
            errors.report(path, lineno, "expected reviewerID<TAB>user_index")
        else:
            users[int(fields[1])] = fields[0].strip()
    return users


def read_titles(paths: Sequence[Path], errors: InputErrors) -> dict[str, str]:
    """``ASIN -> title`` from ``asin<TAB>title`` files (an ``asin<TAB>title`` header is skipped)."""
    titles: dict[str, str] = {}
    for path in paths:
        for lineno, line in input_lines(path, path.name):
            asin, tab, title = line.rstrip("\r\n").partition("\t")
            if lineno == 1 and (asin.lower(), title.lower()) == ("asin", "title"):
                continue
            if not tab or not asin.strip():
                errors.report(path, lineno, "expected asin<TAB>title")
                continue
            titles.setdefault(asin.strip(), clean_text(title))
    return titles


@dataclass(frozen=True)
class Sample:
    user: str
    sample_id: int
    sequence: tuple[tuple[str, float], ...]  # (ASIN, ts), stable-sorted by ts: the target is last


def parse_sample(line: str, items: dict[int, tuple[str, int]], users: dict[int, str]) -> Sample:
    """One line of a C2DSR split file; raises ValueError naming what is wrong."""
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) < 4:
        raise ValueError(
            f"expected user<TAB>sample_id<TAB>item|ts|date|<TAB>... with at least "
            f"2 entries, got {len(fields)} fields"
        )
    if not fields[0].strip().isdigit():
        raise ValueError(f"non-integer user index {fields[0]!r}")
    if not fields[1].strip().isdigit():
        raise ValueError(f"non-integer sample id {fields[1]!r}")
    entries = []
    for position, entry in enumerate(fields[2:], start=1):
        parts = entry.split("|")
        if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError(f"entry {position} {entry!r}: missing field (expected item|ts|date|)")
        if not parts[0].strip().isdigit():
            raise ValueError(f"entry {position}: non-integer item index {parts[0]!r}")
        index = int(parts[0])
        if index not in items:
            raise ValueError(
                f"entry {position}: unknown item index {index} (not in the item lists)"
            )
        try:
            timestamp = float(parts[1])
        except ValueError:
            timestamp = math.nan
        if not math.isfinite(timestamp):
            raise ValueError(f"entry {position}: non-numeric timestamp {parts[1]!r}")
        entries.append((items[index][0], timestamp))
    entries.sort(key=lambda entry: entry[1])  # stable: on equal ts the later entry wins the target
    user = int(fields[0])
    return Sample(users.get(user, f"user{user}"), int(fields[1]), tuple(entries))


def read_samples(
    path: Path, items: dict[int, tuple[str, int]], users: dict[int, str], errors: InputErrors
) -> list[Sample]:
    samples = []
    for lineno, line in input_lines(path, path.name):
        if not line.strip():
            continue
        try:
            samples.append(parse_sample(line, items, users))
        except ValueError as error:
            errors.report(path, lineno, str(error))
    return samples


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
    with_history = (
        (not has_train) if spec.eval_history_in_train is None else spec.eval_history_in_train
    )
    if not has_train and not with_history:
        raise ValueError(
            f"{spec.input_dir}: no train file, so the valid/test histories are the only "
            "training data; drop --no-eval-history-in-train"
        )
    cases, n_sequences = build_cases(samples, spec.max_len, with_history)
    titles = read_titles(files.titles, errors)
    item_rows = [
        Item(asin, spec.domains[domain], titles.get(asin, ""))
        for _, (asin, domain) in sorted(items.items())
    ]
    all_samples = [sample for split in SPLITS for sample in samples.get(split, [])]
    eval_samples = [s for split in EVAL_SPLITS for s in samples[split]]
    max_sample_id = max(sample.sample_id for sample in all_samples)
    notes = []
    if not has_train:
        unpublished = max_sample_id + 1 - len(eval_samples)
        hint = (
            f" (its sample ids leave {unpublished:,} training samples unpublished)"
            if unpublished > 0
            else ""
        )
        notes.append(
            f"no train file ({' / '.join(SPLIT_FILE_NAMES['train'])}) in {spec.input_dir}: the "
            f"training cases were REBUILT from the {len(eval_samples):,} valid/test users' "
            f"histories (every prefix, their targets removed). This is not C2DSR's training "
            f"set{hint}; results trained on it are not comparable with numbers trained on C2DSR's "
            "train file."
        )
    unknown_users = sorted({s.user for s in all_samples} - set(users.values())) if users else []
    if unknown_users:
        logger.warning(
            "%d user indexes are not in %s; their tokens are user<index>, e.g. %s",
            len(unknown_users),
            files.userlist,
            unknown_users[:3],
        )
    titled = sum(1 for item in item_rows if item.title)
    logger.info(
        "titles for %d of %d items (%d titled ASINs are in neither list)",
        titled,
        len(item_rows),
        len(set(titles) - {item.token for item in item_rows}),
    )
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
