"""The cross-domain dataset format, its reader, and the leakage and sanity checks run on it.

A dataset folder ``<data_path>/<name>/`` written by ``llmemf-data amazon`` or ``llmemf-data c2dsr``:

- ``<name>.item``: ``item_id:token  domain:token  title:token_seq`` (+ optional ``description``,
  ``image_url``); the item token is the Amazon ASIN, the domain token the domain's name;
- ``<name>.inter``: every interaction, ``user_id:token  item_id:token  timestamp:float``;
- ``<name>.{train,valid,test}.inter``: RecBole benchmark files, one prediction case per row,
  ``user_id:token  item_id_list:token_seq  item_id:token  timestamp:float`` (the history before the
  target in time order, at most ``MAX_ITEM_LIST_LENGTH`` items, then the target and its time);
- ``<name>.yaml`` and ``stats.md`` / ``stats.json``.

``check_data`` runs the checks on a dataset in memory (both tools call it before writing anything);
``llmemf-data check <folder>`` reads a folder and runs the same checks on it.
"""

from __future__ import annotations

import argparse
import bisect
import logging
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
EVAL_SPLITS = ("valid", "test")
ASIN = re.compile(r"^[0-9A-Z]{10}$")  # Amazon Standard Identification Number (ISBN-10 for books)
INTER_HEADER = ["user_id:token", "item_id:token", "timestamp:float"]
CASE_HEADER = ["user_id:token", "item_id_list:token_seq", "item_id:token", "timestamp:float"]
ITEM_COLUMNS = {  # attribute of Item -> header of its column in <name>.item
    "token": "item_id:token",
    "domain": "domain:token",
    "title": "title:token_seq",
    "description": "description:token_seq",
    "image_url": "image_url:token",
}
ITEM_COLUMNS_REQUIRED = (ITEM_COLUMNS["token"], ITEM_COLUMNS["domain"])
EXAMPLES = 3  # examples quoted per failed check


@dataclass(frozen=True)
class Item:
    token: str  # the ASIN
    domain: str
    title: str = ""
    description: str = ""
    image_url: str = ""


@dataclass(frozen=True)
class Case:
    """One prediction case: the user's history before ``target`` (time order, truncated)."""

    user: str
    history: tuple[str, ...]
    target: str
    timestamp: float  # of the target interaction


@dataclass
class CrossDomainData:
    name: str
    domains: tuple[str, ...]
    items: list[Item]
    interactions: list[tuple[str, str, float]]  # (user, item, timestamp), each user in time order
    cases: dict[str, list[Case]]  # "train", "valid", "test"
    max_len: int
    train_sequences: int = 0  # sequences the training cases were cut from
    notes: list[str] = field(default_factory=list)  # shown loudly in the output and stats file


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        lines = [f"ERROR: {message}" for message in self.errors]
        lines += [f"warning: {message}" for message in self.warnings]
        return "\n".join(lines) if lines else "all checks passed"


def _summary(problem: str, examples: list[str]) -> str:
    shown = "; ".join(examples[:EXAMPLES])
    more = f" (and {len(examples) - EXAMPLES} more)" if len(examples) > EXAMPLES else ""
    return f"{len(examples)} {problem}: {shown}{more}"


def check_items(items: Sequence[Item], domains: Sequence[str]) -> list[str]:
    """Every item has one of the dataset's domains, is listed once, and its token is an ASIN."""
    errors = []
    no_domain = [item.token for item in items if not item.domain]
    if no_domain:
        errors.append(_summary("items have no domain", no_domain))
    unknown = [f"{i.token} ({i.domain})" for i in items if i.domain and i.domain not in domains]
    if unknown:
        errors.append(_summary(f"items have a domain other than {', '.join(domains)}", unknown))
    first_domain: dict[str, str] = {}
    overlap, twice = [], []
    for item in items:
        if item.token in first_domain:
            previous = first_domain[item.token]
            if previous != item.domain:
                overlap.append(f"{item.token} in {previous} and {item.domain}")
            else:
                twice.append(item.token)
        else:
            first_domain[item.token] = item.domain
    if overlap:
        errors.append(_summary("items belong to two domains (domains overlap)", overlap))
    if twice:
        errors.append(_summary("items are listed twice", twice))
    not_asin = [item.token for item in items if not ASIN.match(item.token)]
    if not_asin:
        errors.append(
            _summary("item ids are not ASINs (10 upper-case letters or digits)", not_asin)
        )
    return errors


def check_references(data: CrossDomainData) -> list[str]:
    """Every item of an interaction or a case is listed in the item file."""
    known = {item.token for item in data.items}
    unknown: dict[str, str] = {}  # item -> where it is first used
    for _, item, _ in data.interactions:
        if item not in known:
            unknown.setdefault(item, f"{item} (interactions)")
    for split, cases in data.cases.items():
        for case in cases:
            for item in (*case.history, case.target):
                if item not in known:
                    unknown.setdefault(item, f"{item} ({split})")
    return (
        [_summary("items are used but not listed in the item file", list(unknown.values()))]
        if unknown
        else []
    )


def check_cases(data: CrossDomainData) -> tuple[list[str], list[str]]:
    """Shapes RecBole relies on: non-empty splits and histories, histories of at most max_len."""
    errors, warnings = [], []
    for split in SPLITS:
        cases = data.cases.get(split, [])
        if not cases:
            errors.append(f"the {split} split is empty")
        empty = [f"user {case.user} ({split})" for case in cases if not case.history]
        if empty:
            errors.append(_summary("cases have an empty history", empty))
        long = [
            f"user {c.user} ({split}, {len(c.history)})"
            for c in cases
            if len(c.history) > data.max_len
        ]
        if long:
            errors.append(_summary(f"histories are longer than max_len {data.max_len}", long))
    both = sorted(
        {c.user for c in data.cases.get("valid", [])} & {c.user for c in data.cases.get("test", [])}
    )
    if both:
        warnings.append(_summary("users have both a valid and a test case", both))
    return errors, warnings


def check_leakage(cases: dict[str, list[Case]]) -> list[str]:
    """No valid/test target occurs in the same user's training cases, as input or as target."""
    eval_users = {case.user for split in EVAL_SPLITS for case in cases.get(split, [])}
    seen: dict[str, set[str]] = defaultdict(set)
    for case in cases.get("train", []):
        if case.user in eval_users:
            seen[case.user].update(case.history)
            seen[case.user].add(case.target)
    leaks = [
        f"user {case.user} {split} target {case.target}"
        for split in EVAL_SPLITS
        for case in cases.get(split, [])
        if case.target in seen.get(case.user, ())
    ]
    return (
        [_summary("valid/test targets occur in the same user's training input (leakage)", leaks)]
        if leaks
        else []
    )


def check_time_order(data: CrossDomainData) -> list[str]:
    """Each case is the user's own interactions in time order, and training never sees the future.

    - the target is an interaction of the user at the case's timestamp;
    - the history items are interactions of the user whose times can be read in non-decreasing
      order, none later than the target (checked greedily: earliest feasible time per item);
    - no training case of a user is later than that user's valid or test target.
    """
    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for user, item, timestamp in data.interactions:
        times[user][item].append(timestamp)
    for per_user in times.values():
        for values in per_user.values():
            values.sort()
    not_interaction, out_of_order = [], []
    for split, cases in data.cases.items():
        for case in cases:
            user_times = times.get(case.user, {})
            if case.timestamp not in user_times.get(case.target, ()):
                not_interaction.append(f"user {case.user} {split} target {case.target}")
                continue
            if not _ordered(case, user_times):
                out_of_order.append(f"user {case.user} {split} target {case.target}")
    errors = []
    if not_interaction:
        errors.append(
            _summary(
                "case targets are not interactions of their user at that time", not_interaction
            )
        )
    if out_of_order:
        errors.append(
            _summary(
                "histories are not the user's earlier interactions in time order", out_of_order
            )
        )
    eval_time: dict[str, float] = {}
    for split in EVAL_SPLITS:
        for case in data.cases.get(split, []):
            eval_time[case.user] = min(case.timestamp, eval_time.get(case.user, case.timestamp))
    future = [
        f"user {case.user} trains on {case.target} at {_time(case.timestamp)} > "
        f"{_time(eval_time[case.user])}"
        for case in data.cases.get("train", [])
        if case.user in eval_time and case.timestamp > eval_time[case.user]
    ]
    if future:
        errors.append(
            _summary("training cases are later than the same user's valid/test target", future)
        )
    return errors


def _time(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _ordered(case: Case, user_times: dict[str, list[float]]) -> bool:
    previous = float("-inf")
    for item in case.history:
        values = user_times.get(item, [])
        position = bisect.bisect_left(values, previous)
        if position == len(values):
            return False
        previous = values[position]
    return previous <= case.timestamp


def check_data(data: CrossDomainData) -> CheckReport:
    """All checks; errors make the tools refuse to write and ``llmemf-data check`` fail."""
    report = CheckReport()
    report.errors += check_items(data.items, data.domains)
    report.errors += check_references(data)
    errors, warnings = check_cases(data)
    report.errors += errors
    report.warnings += warnings
    report.errors += check_leakage(data.cases)
    report.errors += check_time_order(data)
    return report


# ---------------------------------------------------------------------------------------------
# Reading a folder


class FormatError(ValueError):
    """A dataset file that does not follow the format; the message names file and line."""


def _read_table(path: Path, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """Rows of an atomic file as ``{column name: value}``; the header must hold ``required``."""
    if not path.is_file():
        raise FormatError(f"{path}: file not found")
    with open(path, encoding="utf-8") as file:
        header = file.readline().rstrip("\n").split("\t")
        missing = [column for column in required if column not in header]
        if missing:
            raise FormatError(f"{path}:1: header lacks {', '.join(missing)}; got {header}")
        names = [column.split(":")[0] for column in header]
        for lineno, line in enumerate(file, start=2):
            values = line.rstrip("\n").split("\t")
            if len(values) != len(names):
                raise FormatError(
                    f"{path}:{lineno}: expected {len(names)} fields, got {len(values)}"
                )
            yield lineno, dict(zip(names, values))


def _timestamp(path: Path, lineno: int, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise FormatError(f"{path}:{lineno}: non-numeric timestamp {value!r}") from None


def read_folder(folder: str | Path) -> CrossDomainData:
    """Read a dataset folder written by the tools (see the module docstring)."""
    folder = Path(folder)
    name = folder.name
    items = [
        Item(**{attr: row.get(column.split(":")[0], "") for attr, column in ITEM_COLUMNS.items()})
        for _, row in _read_table(folder / f"{name}.item", ITEM_COLUMNS_REQUIRED)
    ]
    interactions = [
        (
            row["user_id"],
            row["item_id"],
            _timestamp(folder / f"{name}.inter", lineno, row["timestamp"]),
        )
        for lineno, row in _read_table(folder / f"{name}.inter", INTER_HEADER)
    ]
    cases = {}
    for split in SPLITS:
        path = folder / f"{name}.{split}.inter"
        cases[split] = [
            Case(
                row["user_id"],
                tuple(row["item_id_list"].split()),
                row["item_id"],
                _timestamp(path, lineno, row["timestamp"]),
            )
            for lineno, row in _read_table(path, CASE_HEADER)
        ]
    max_len = max((len(c.history) for split in cases.values() for c in split), default=0)
    config_path = folder / f"{name}.yaml"
    if config_path.is_file():
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        max_len = int(config.get("MAX_ITEM_LIST_LENGTH", max_len))
    domains = tuple(dict.fromkeys(item.domain for item in items if item.domain))
    return CrossDomainData(name, domains, items, interactions, cases, max_len)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data check",
        description="Leakage and sanity checks of a cross-domain dataset folder written by "
        "`llmemf-data amazon` or `llmemf-data c2dsr`: no valid/test target in the same user's "
        "training input, time order respected, every item has a domain, domains do not overlap, "
        "item ids are ASINs. Exit status 1 when a check fails.",
    )
    parser.add_argument("folder", help="dataset folder <data_path>/<name> holding <name>.item etc.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        data = read_folder(args.folder)
    except FormatError as error:
        print(f"llmemf-data check: {error}", file=sys.stderr)
        return 1
    report = check_data(data)
    counts = ", ".join(f"{len(data.cases[s]):,} {s}" for s in SPLITS)
    print(
        f"{args.folder}: {len(data.items):,} items in {', '.join(data.domains)}; "
        f"{len(data.interactions):,} interactions; cases: {counts}"
    )
    print(report.format())
    return 0 if report.ok else 1
