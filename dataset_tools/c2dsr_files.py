"""Reading the files of a C2DSR split folder (their format: the ``c2dsr`` module's docstring):
the item lists, the user list, the title files and the samples of the split files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from recbole_llmemf.dataset_tools.importing import InputErrors, clean_text, input_lines

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
    """``user_index -> reviewerID`` of a ``userlist.txt`` file."""
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
    """The samples of a split file, in file order; malformed lines go to ``errors``."""
    samples = []
    for lineno, line in input_lines(path, path.name):
        if not line.strip():
            continue
        try:
            samples.append(parse_sample(line, items, users))
        except ValueError as error:
            errors.report(path, lineno, str(error))
    return samples
