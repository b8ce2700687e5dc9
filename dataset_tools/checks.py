"""The cross-domain dataset format, its reader, and the leakage and sanity checks run on it.

A dataset folder ``<data_path>/<name>/`` written by ``llmemf-data amazon`` or ``llmemf-data c2dsr``
(the "split" layout, ``benchmark_filename`` in its yaml):

- ``<name>.item``: ``item_id:token  domain:token  title:token_seq`` (+ optional ``description``,
  ``image_url``); the item token is the Amazon ASIN, the domain token the domain's name;
- ``<name>.inter``: every interaction, ``user_id:token  item_id:token  timestamp:float``;
- ``<name>.{train,valid,test}.inter``: RecBole benchmark files, one prediction case per row,
  ``user_id:token  item_id_list:token_seq  item_id:token  timestamp:float`` (the history before the
  target in time order, at most ``MAX_ITEM_LIST_LENGTH`` items, then the target and its time);
- ``<name>.yaml`` and ``stats.md`` / ``stats.json``.

The "plain" layout, which ``llmemf-data synthetic`` writes, has no split files: RecBole splits
``<name>.inter`` itself, each user's last interaction in time being the test case. Field names,
separators and the layout come from the dataset's yaml, in RecBole's config keys (``Layout``).

``check_data`` runs the checks on a dataset in memory (both tools call it before writing anything);
``llmemf-data check <folder>`` reads a folder of either layout, runs the same checks on it and
checks its feature files. ``loading_report`` is what the plugin checks when RecBole loads a dataset
that names a ``domain_field`` (``recbole_llmemf.features.check_files_before_loading``).
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from llmemf_cli.parsers import build_check_parser as build_parser
from recbole_llmemf.errors import DataError

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
    # Read from a folder: no cases in the plain layout; time order unknown when a split layout
    # lacks <name>.inter or its files a time field; item tokens are ASINs only where our tools
    # wrote the folder.
    timed: bool = True
    ids_are_asins: bool = True
    first_use: dict[str, str] = field(default_factory=dict)  # unlisted item -> "file:line"


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


def check_items(items: Sequence[Item], domains: Sequence[str], asin: bool = True) -> list[str]:
    """Every item has one of the dataset's domains, is listed once, and (``asin``) its token is
    an ASIN."""
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
    not_asin = [item.token for item in items if asin and not ASIN.match(item.token)]
    if not_asin:
        errors.append(
            _summary("item ids are not ASINs (10 upper-case letters or digits)", not_asin)
        )
    return errors


def unknown_items(data: CrossDomainData) -> tuple[dict[str, str], dict[str, str], int]:
    """Items used but not listed: ``(as targets or interactions, only in histories, rows)``, each
    item mapped to where it is first used; ``rows`` counts the interactions and cases whose
    target is unknown (RecBole drops those rows, ``filter_inter_by_user_or_item``)."""
    known = {item.token for item in data.items}
    targets: dict[str, str] = {}
    histories: dict[str, str] = {}
    rows = 0
    for _, item, _ in data.interactions:
        if item not in known:
            targets.setdefault(item, data.first_use.get(item, "interactions"))
            rows += 1
    for split, cases in data.cases.items():
        for case in cases:
            if case.target not in known:
                targets.setdefault(case.target, data.first_use.get(case.target, split))
                rows += 1
            for item in case.history:
                if item not in known:
                    histories.setdefault(item, data.first_use.get(item, split))
    return targets, {k: v for k, v in histories.items() if k not in targets}, rows


def check_references(data: CrossDomainData) -> list[str]:
    """Every item of an interaction or a case is listed in the item file."""
    targets, histories, _ = unknown_items(data)
    unknown = [f"{item} ({where})" for item, where in {**targets, **histories}.items()]
    return [_summary("items are used but not listed in the item file", unknown)] if unknown else []


def targets_of_test_cases(data: CrossDomainData) -> list[str]:
    """Items the test cases ask for: the test split's targets, or in the plain layout each user's
    last interaction in time (RecBole's leave-one-out split, ``eval_args: {split: {LS: ...}}``)."""
    if data.cases:
        return [case.target for case in data.cases.get("test", [])]
    last: dict[str, tuple[float, int, str]] = {}
    for position, (user, item, timestamp) in enumerate(data.interactions):
        last[user] = max(last.get(user, (timestamp, position, item)), (timestamp, position, item))
    return [item for _, _, item in last.values()]


def check_domains(data: CrossDomainData) -> list[str]:
    """Warnings: a domain whose items no interaction uses, or that no test case asks for (its
    results would silently be missing from every table)."""
    domain_of = {item.token: item.domain for item in data.items}
    used_items = {item for _, item, _ in data.interactions}
    for cases in data.cases.values():
        for case in cases:
            used_items.update(case.history)
            used_items.add(case.target)
    used = {domain_of.get(item) for item in used_items}
    listed = Counter(item.domain for item in data.items)
    tested = {domain_of.get(item) for item in targets_of_test_cases(data)}
    warnings = []
    for domain in data.domains:
        if domain not in used:
            warnings.append(
                f"domain {domain}: {listed[domain]:,} items listed but no interaction uses them"
            )
        elif domain not in tested:
            warnings.append(
                f"domain {domain}: no test case has a {domain} target; no {domain} "
                "results will be reported"
            )
    return warnings


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
    report.errors += check_items(data.items, data.domains, asin=data.ids_are_asins)
    report.errors += check_references(data)
    if data.cases:  # the split layout; RecBole splits a plain one itself
        errors, warnings = check_cases(data)
        report.errors += errors
        report.warnings += warnings
        report.errors += check_leakage(data.cases)
    if data.timed:
        report.errors += check_time_order(data)
    else:
        report.warnings.append(
            f"time order not checked: {data.name}.inter with every interaction, or the "
            "time field in the split files, is missing"
        )
    report.warnings += check_domains(data)
    return report


def loading_report(data: CrossDomainData) -> CheckReport:
    """What RecBole would get wrong without a word, for a dataset that names a ``domain_field``.

    Errors: item-file problems, and history items the item file does not list (they would have no
    domain). Warnings: interactions whose item the item file does not list (RecBole drops them),
    domains without interactions or without test cases.
    """
    report = CheckReport(errors=check_items(data.items, data.domains, asin=False))
    targets, histories, rows = unknown_items(data)
    if histories:
        examples = [f"{where}: '{item}'" for item, where in histories.items()]
        report.errors.append(
            _summary(f"history items are not listed in {data.name}.item (no domain)", examples)
        )
    if targets:
        first_item, first_where = next(iter(targets.items()))
        report.warnings.append(
            f"{rows:,} interactions name {len(targets):,} items that {data.name}.item does not "
            f"list (first: {first_where}: '{first_item}'); RecBole drops these interactions "
            "(filter_inter_by_user_or_item)"
        )
    report.warnings += check_domains(data)
    return report


# ---------------------------------------------------------------------------------------------
# Reading a folder

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")  # RecBole's FeatureType values
# pandas reads these as missing (read_csv's default na_values), even in a column read as str;
# RecBole then fills a missing token with [PAD] and a missing float with the column's mean.
PANDAS_NA = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)  # fmt: skip
PROBLEMS_SHOWN = 5  # problem lines quoted in one FormatError


class FormatError(DataError):
    """A dataset file that does not follow the format; the message names file and line."""


@dataclass(frozen=True)
class Layout:
    """Which files of ``<folder>/<name>.*`` RecBole reads and how, in RecBole's config keys."""

    folder: Path
    name: str
    uid: str = "user_id"  # USER_ID_FIELD
    iid: str = "item_id"  # ITEM_ID_FIELD
    time: str | None = "timestamp"  # TIME_FIELD
    domain: str = "domain"  # domain_field
    benchmark: tuple[str, ...] = ()  # benchmark_filename: <name>.<part>.inter, train/valid/test
    histories: tuple[str, ...] = ()  # alias_of_item_id: fields holding item tokens
    field_separator: str = "\t"
    seq_separator: str = " "
    encoding: str = "utf-8"
    load_col: dict | None = None  # as in RecBole's config; None loads every column
    unload_col: dict | None = None

    @property
    def item_path(self) -> Path:
        return self.folder / f"{self.name}.item"

    def inter_path(self, part: str | None = None) -> Path:
        return self.folder / (f"{self.name}.{part}.inter" if part else f"{self.name}.inter")

    def loads(self, source: str, column: str) -> bool:
        """Whether RecBole loads ``column`` of ``<name>.<source>`` (dataset.py,
        ``_get_load_and_unload_col``)."""
        if self.load_col is not None:
            wanted = self.load_col.get(source, ())
            if wanted != "*" and column not in wanted:
                return False
        return column not in ((self.unload_col or {}).get(source) or ())


def layout_from_yaml(folder: str | Path) -> Layout:
    """The layout of a dataset folder from ``<name>.yaml`` (RecBole's defaults for missing keys);
    without the key, the split layout when ``<name>.train.inter`` exists."""
    folder = Path(folder)
    name = folder.name
    config = _dataset_yaml(folder)
    benchmark = config.get("benchmark_filename", "absent")
    if benchmark == "absent":
        split = (folder / f"{name}.{SPLITS[0]}.inter").is_file()
        benchmark = list(SPLITS) if split else None
    iid = config.get("ITEM_ID_FIELD", "item_id")
    histories = config.get("alias_of_item_id") or []
    if benchmark and not histories:
        histories = [iid + config.get("LIST_SUFFIX", "_list")]
    return Layout(
        folder=folder,
        name=name,
        uid=config.get("USER_ID_FIELD", "user_id"),
        iid=iid,
        time=config.get("TIME_FIELD", "timestamp"),
        domain=config.get("domain_field") or "domain",
        benchmark=tuple(benchmark or ()),
        histories=tuple(histories),
        field_separator=config.get("field_separator", "\t"),
        seq_separator=config.get("seq_separator", " "),
        encoding=config.get("encoding", "utf-8"),
        load_col=config.get("load_col"),
        unload_col=config.get("unload_col"),
    )


def _dataset_yaml(folder: Path) -> dict:
    path = folder / f"{folder.name}.yaml"
    if not path.is_file():
        return {}
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise FormatError(f"{path}: not valid yaml: {error}") from None


class _Reader:
    """Reads a folder's atomic files, keeping every problem as ``file:line: what is wrong``."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.problems: list[str] = []
        self.known: set[str] = set()  # the item file's tokens, once read
        self.first_use: dict[str, str] = {}  # unknown item -> where first used
        self.timed = True  # every row read so far had a time

    def rows(
        self, path: Path, source: str, required: Sequence[str]
    ) -> Iterator[tuple[int, dict[str, str]]]:
        """Rows whose fields RecBole would read correctly, as ``(lineno, {field: value})``.

        Every line has as many fields as the header; the ``required`` fields, the time field and
        every loaded token or float field are non-empty and not a value pandas reads as missing;
        floats and times are finite numbers. Other lines are problems, not rows.
        """
        layout = self.layout
        if not path.is_file():
            raise FormatError(f"{path}: file not found")
        with open(path, encoding=layout.encoding) as file:
            header = file.readline().rstrip("\r\n").split(layout.field_separator)
            names, types = [], []
            for column in header:
                name, _, kind = column.partition(":")
                if kind not in FIELD_TYPES:
                    raise FormatError(
                        f"{path}:1: field '{column}' needs a type, name:{'|'.join(FIELD_TYPES)}"
                    )
                names.append(name)
                types.append(kind)
            missing = [column for column in required if column not in names]
            if missing:
                raise FormatError(f"{path}:1: header lacks {', '.join(missing)}; got {header}")
            checked = [
                (i, name, "float" if name == layout.time else kind)  # times order the cases
                for i, (name, kind) in enumerate(zip(names, types))
                if name in required
                or name == layout.time
                or (kind in ("token", "float") and layout.loads(source, name))
            ]
            for lineno, line in enumerate(file, start=2):
                line = line.rstrip("\r\n")
                if not line:
                    continue  # pandas skips blank lines too
                values = line.split(layout.field_separator)
                if len(values) != len(names):
                    self.problems.append(
                        f"{path}:{lineno}: expected {len(names)} fields, got {len(values)} "
                        f"(header: {', '.join(names)})"
                    )
                    continue
                for i, name, kind in checked:
                    problem = _value_problem(values[i], name, kind)
                    if problem:
                        self.problems.append(f"{path}:{lineno}: {problem}")
                        break
                else:
                    yield lineno, dict(zip(names, values))

    def use(self, items: Sequence[str], path: Path, lineno: int) -> None:
        for item in items:
            if item not in self.known and item not in self.first_use:
                self.first_use[item] = f"{path.name}:{lineno}"

    def timestamp(self, row: dict[str, str], lineno: int) -> float:
        """The row's time, or its line number where the layout has no time field."""
        time = self.layout.time
        if time and time in row:
            return float(row[time])
        self.timed = False
        return float(lineno)

    def raise_problems(self) -> None:
        if self.problems:
            more = len(self.problems) - PROBLEMS_SHOWN
            tail = [f"(and {more} more problems)"] if more > 0 else []
            raise FormatError("\n".join(self.problems[:PROBLEMS_SHOWN] + tail))


def _value_problem(value: str, name: str, kind: str) -> str:
    if value in PANDAS_NA:
        return f"empty {name}" if not value else f"{name} {value!r} reads as missing in pandas"
    if kind == "float":
        try:
            number = float(value)
        except ValueError:
            return f"non-numeric {name} {value!r}"
        if not math.isfinite(number):
            return f"non-finite {name} {value!r}"
    return ""


def read_folder(
    folder: str | Path, layout: Layout | None = None, all_interactions: bool = True
) -> CrossDomainData:
    """Read a dataset folder of either layout (see the module docstring).

    ``all_interactions``: in the split layout, also read ``<name>.inter`` when present (the
    time-order checks need it; RecBole does not read it).

    Raises:
        FormatError: a missing file or field, a line with the wrong number of fields, an empty or
            non-numeric value; the message names file and line.
    """
    layout = layout or layout_from_yaml(folder)
    reader = _Reader(layout)
    items = [
        Item(
            token=row[layout.iid],
            domain=row[layout.domain],
            **{attr: row.get(attr, "") for attr in ("title", "description", "image_url")},
        )
        for _, row in reader.rows(layout.item_path, "item", (layout.iid, layout.domain))
    ]
    reader.known = {item.token for item in items}
    interactions = []
    plain_path = layout.inter_path()
    read_plain = not layout.benchmark or (all_interactions and plain_path.is_file())
    if read_plain:
        required = [layout.uid, layout.iid]
        if layout.time and layout.loads("inter", layout.time):
            required.append(layout.time)
        for lineno, row in reader.rows(plain_path, "inter", required):
            reader.use((row[layout.iid],), plain_path, lineno)
            interactions.append((row[layout.uid], row[layout.iid], reader.timestamp(row, lineno)))
    cases: dict[str, list[Case]] = {}
    for split, part in zip(SPLITS, layout.benchmark):
        path = layout.inter_path(part)
        cases[split] = []
        for lineno, row in reader.rows(path, "inter", (layout.uid, layout.iid)):
            history = tuple(
                token
                for column in layout.histories
                for token in row.get(column, "").split(layout.seq_separator)
                if token
            )
            reader.use((*history, row[layout.iid]), path, lineno)
            cases[split].append(
                Case(row[layout.uid], history, row[layout.iid], reader.timestamp(row, lineno))
            )
    reader.raise_problems()
    max_len = max((len(c.history) for split in cases.values() for c in split), default=0)
    max_len = int(_dataset_yaml(layout.folder).get("MAX_ITEM_LIST_LENGTH", max_len))
    domains = tuple(dict.fromkeys(item.domain for item in items if item.domain))
    return CrossDomainData(
        layout.name,
        domains,
        items,
        interactions,
        cases,
        max_len,
        timed=reader.timed and read_plain,
        ids_are_asins=_written_by_our_tools(layout.folder),
        first_use=reader.first_use,
    )


def _written_by_our_tools(folder: Path) -> bool:
    """``llmemf-data amazon`` and ``c2dsr`` write ASIN item tokens and record themselves."""
    try:
        stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return str(stats.get("build", {}).get("tool", "")).startswith("llmemf-data")


# ---------------------------------------------------------------------------------------------
# Feature files


def check_features(folder: Path, data: CrossDomainData) -> tuple[CheckReport, list[str]]:
    """Every feature file of the folder, through the reader a training run uses (width, NaN,
    duplicate and unknown items), and its coverage per domain and of the test targets.

    Returns ``(report, lines)``: errors and warnings, and one coverage line per file.
    """
    from recbole_llmemf.features import FeatureFileError, read_item_vectors

    config = _dataset_yaml(folder)
    used = {
        f"{data.name}.{config.get(f'{modality}_feature_suffix', suffix)}": modality
        for modality, suffix in (("image", "itememb_img"), ("text", "itememb_txt"))
        if config.get(f"use_{modality}", True)  # LLMEMF.yaml turns both on
    }
    present = {
        path.name
        for path in folder.glob(f"{data.name}.itememb_*")
        if path.suffix not in (".npy", ".tokens", ".json", ".key")
    }
    report, lines = CheckReport(), []
    known = {item.token for item in data.items}
    for name in sorted(present | set(used)):
        path = folder / name
        if not path.is_file():
            report.errors.append(
                f"{path}: feature file not found, but use_{used[name]} is on; create it with "
                f"`llmemf-data features` or set use_{used[name]}: False in {data.name}.yaml"
            )
            continue
        try:
            vectors = read_item_vectors(str(path), known, binary_copy=False)
        except FeatureFileError as error:
            report.errors.append(str(error))
            continue
        line, empty = _coverage_line(name, vectors.tokens, vectors.matrix.shape[1], data)
        lines.append(line)
        report.warnings += [f"{name}: no {domain} item has a vector" for domain in empty]
    return report, lines


def _coverage_line(name: str, tokens: list[str], dim: int, data: CrossDomainData):
    have = set(tokens)
    listed = Counter(item.domain for item in data.items)
    covered = Counter(item.domain for item in data.items if item.token in have)
    parts = [
        f"{d} {covered[d]:,} of {listed[d]:,} ({100 * covered[d] / max(listed[d], 1):.1f}%)"
        for d in data.domains
    ]
    targets = targets_of_test_cases(data)
    without = sum(target not in have for target in targets)
    line = (
        f"{name}: {dim}-d vectors for {len(have):,} of {len(data.items):,} items; "
        f"{', '.join(parts)}; {without:,} of {len(targets):,} test targets have none"
    )
    return line, [d for d in data.domains if listed[d] and not covered[d]]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    folder = Path(args.folder)
    try:
        data = read_folder(folder)
    except FormatError as error:
        print(error, file=sys.stderr)
        return 1
    report = check_data(data)
    feature_report, coverage = check_features(folder, data)
    report.errors += feature_report.errors
    report.warnings += feature_report.warnings
    if data.cases:
        parts = ", ".join(f"{len(data.cases[s]):,} {s}" for s in data.cases)
        layout = f"split files, cases: {parts}"
    else:
        layout = f"{data.name}.inter, split by RecBole"
    print(
        f"{folder}: {len(data.items):,} items in {', '.join(data.domains)}; "
        f"{len(data.interactions):,} interactions; {layout}"
    )
    print("\n".join(coverage or [f"no feature files ({data.name}.itememb_*)"]))
    print(report.format())
    return 0 if report.ok else 1
