"""``llmemf-data amazon``: two raw Amazon review categories -> RecBole cross-domain files.

Reads the 2014 release (``reviews_<Cat>_5.json.gz``, ``meta_<Cat>.json.gz`` whose lines are Python
literals) and the 2018 release (``<Cat>.json.gz`` or ``<Cat>_5.json.gz``, ``meta_<Cat>.json.gz``,
JSON lines), streaming the gzip files. Steps, as in the paper (§4, after Ma et al. 2019/2022):

1. users active in both domains (the smaller review file is read first for its user set, the other
   keeps only those users' reviews, then the first file is read again for the common users; memory
   holds one user set and the common users' interactions, never the whole files);
2. one interaction per (user, item), the earliest;
3. iterated k-core: users with >= ``min_user_inter`` interactions, items with >= ``min_item_inter``,
   users with >= ``min_domain_items`` items of each domain, repeated until nothing changes;
4. each user's merged sequence in time order, ties broken by domain (source first), then ASIN;
5. the users whose sequences end latest form the test set, the next ones the valid set; their last
   item is the target. Training cases are every prefix of the other users' sequences and (by
   default) of the valid/test users' histories, so that user-based baselines know every user.

The writer (``write_dataset``), the statistics table and the input-error policy live here and are
shared with ``llmemf-data c2dsr``.
"""

from __future__ import annotations

import ast
import gzip
import html
import json
import logging
import math
import re
import sys
import time
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from llmemf_cli.parsers import build_amazon_parser as build_parser
from recbole_llmemf.dataset_tools._io import atomic_write, write_atomic_file
from recbole_llmemf.dataset_tools.checks import (
    CASE_HEADER,
    EVAL_SPLITS,
    INTER_HEADER,
    ITEM_COLUMNS,
    SPLITS,
    Case,
    CrossDomainData,
    Item,
    check_data,
)

logger = logging.getLogger(__name__)

REVIEW_FILE_NAMES = ("reviews_{}_5.json.gz", "{}_5.json.gz", "reviews_{}.json.gz", "{}.json.gz")
META_FILE_NAMES = ("meta_{}.json.gz",)
MAX_LOGGED_ERRORS = 10


# ---------------------------------------------------------------------------------------------
# Malformed input: one policy for every tool


class MalformedInputError(ValueError):
    """A malformed input line under ``--on-error stop``; the message names file and line."""


@dataclass
class InputErrors:
    """``stop`` raises at the first malformed line; ``skip`` logs it, counts it and goes on."""

    policy: str = "stop"
    skipped: Counter = field(default_factory=Counter)  # file -> lines skipped
    _lines: set = field(default_factory=set)  # (file, line) already reported

    def report(self, path: str | Path, lineno: int, message: str) -> None:
        text = f"{path}:{lineno}: {message}"
        if self.policy == "stop":
            raise MalformedInputError(text)
        if (str(path), lineno) in self._lines:
            return
        self._lines.add((str(path), lineno))
        self.skipped[str(path)] += 1
        total = sum(self.skipped.values())
        if total <= MAX_LOGGED_ERRORS:
            logger.warning("skipped %s", text)
        elif total == MAX_LOGGED_ERRORS + 1:
            logger.warning("more malformed lines: counted, not shown")

    def known(self, path: str | Path, lineno: int) -> bool:
        """Whether this line was reported before (files read twice report a line once)."""
        return (str(path), lineno) in self._lines

    def summary(self) -> list[str]:
        return [f"{path}: skipped {n:,} malformed lines" for path, n in self.skipped.items()]


def input_lines(path: Path, desc: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a text or ``.gz`` file, with a progress bar over its bytes."""
    size = path.stat().st_size
    start = time.perf_counter()
    progress = tqdm(total=size, desc=desc, unit="B", unit_scale=True, disable=None, leave=False)
    lineno = position = 0
    with progress, open(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        for lineno, line in enumerate(stream, start=1):
            if lineno % 8192 == 0:  # the compressed position, since the unpacked size is unknown
                progress.update(raw.tell() - position)
                position = raw.tell()
            yield lineno, line.decode("utf-8", errors="replace")
        progress.update(size - position)
    elapsed = time.perf_counter() - start
    logger.info(
        "%s: %s lines in %.1f s (%s lines/s)",
        desc,
        f"{lineno:,}",
        elapsed,
        f"{lineno / max(elapsed, 1e-9):,.0f}",
    )


# ---------------------------------------------------------------------------------------------
# Cases, statistics and the writer shared by the tools


def train_cases(user: str, sequence: Sequence[tuple[str, float]], max_len: int) -> list[Case]:
    """Every prefix of a time-ordered sequence as a case (targets at positions >= 1)."""
    items = [item for item, _ in sequence]
    return [
        Case(user, tuple(items[max(0, p - max_len) : p]), items[p], sequence[p][1])
        for p in range(1, len(sequence))
    ]


def eval_case(user: str, sequence: Sequence[tuple[str, float]], max_len: int) -> Case:
    """The last item of a time-ordered sequence as target, the ``max_len`` before it as history."""
    history = tuple(item for item, _ in sequence[-max_len - 1 : -1])
    return Case(user, history, sequence[-1][0], sequence[-1][1])


def clean_text(text: object) -> str:
    """One line of text: lists joined, whitespace (tabs, newlines) collapsed to single spaces."""
    if isinstance(text, (list, tuple)):
        text = " ".join(str(part) for part in text)
    return " ".join(str(text or "").split())


STAT_COLUMNS = (  # key, header
    ("items", "#Items"),
    ("items_used", "#Items used"),
    ("interactions", "#Interactions"),
    ("train", "#Train"),
    ("valid", "#Valid"),
    ("test", "#Test"),
    ("avg_length", "Avg.length"),
)


def compute_stats(data: CrossDomainData) -> dict:
    """The numbers of the paper's Table 1 per domain, and for both domains together."""
    domain_of = {item.token: item.domain for item in data.items}
    users = {user for user, _, _ in data.interactions}
    counts = {domain: Counter() for domain in data.domains}
    for item in data.items:
        counts[item.domain]["items"] += 1
    for item in {item for _, item, _ in data.interactions}:
        counts[domain_of[item]]["items_used"] += 1
    for _, item, _ in data.interactions:
        counts[domain_of[item]]["interactions"] += 1
    for split in SPLITS:
        for case in data.cases[split]:
            counts[domain_of[case.target]][split] += 1
    counts["all"] = sum(counts.values(), Counter())
    table = {
        name: {
            **{key: row[key] for key, _ in STAT_COLUMNS if key != "avg_length"},
            "avg_length": round(row["interactions"] / max(len(users), 1), 2),
        }
        for name, row in counts.items()
    }
    return {
        "name": data.name,
        "domains": list(data.domains),
        "table": table,
        "users": len(users),
        "train_sequences": data.train_sequences,
        "max_len": data.max_len,
        "notes": list(data.notes),
    }


def format_stats(stats: dict) -> str:
    """Markdown table like the paper's Table 1, then its legend and any notes."""
    lines = [
        f"# {stats['name']}",
        "",
        "| Domain | " + " | ".join(header for _, header in STAT_COLUMNS) + " |",
        "|---|" + "---:|" * len(STAT_COLUMNS),
    ]
    for domain, row in stats["table"].items():
        cells = [
            f"{row[key]:.2f}" if key == "avg_length" else f"{row[key]:,}" for key, _ in STAT_COLUMNS
        ]
        lines.append(f"| {domain} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Users: {stats['users']:,}. Training sequences: {stats['train_sequences']:,}. "
        f"Histories keep the last {stats['max_len']} items.",
        "#Items: items of the domain in the .item file; #Items used: with at least one "
        "interaction; #Train / #Valid / #Test: prediction cases (rows of the benchmark files) "
        "whose target is in the domain; Avg.length: interactions of the domain per user.",
    ]
    lines += ["", *(f"**WARNING: {note}**" for note in stats["notes"])] if stats["notes"] else []
    return "\n".join(lines) + "\n"


def dataset_yaml(name: str, max_len: int, tool: str) -> str:
    """The dataset's own config, loaded by recbole_llmemf.registry for every model."""
    keys = [
        ("USER_ID_FIELD: user_id", "(str) User field of the .inter files."),
        ("ITEM_ID_FIELD: item_id", "(str) Item field; its tokens are Amazon ASINs."),
        ("load_col:", "(dict) Columns RecBole loads; titles stay in the file for the data tools."),
        ("  inter: [user_id, item_id_list, item_id]", ""),
        ("  item: [item_id, domain]", ""),
        ("alias_of_item_id: [item_id_list]", "(list) History tokens share the ids of item_id."),
        (
            "benchmark_filename: [train, valid, test]",
            f"(list) Pre-split files {name}.<part>.inter.",
        ),
        (
            f"MAX_ITEM_LIST_LENGTH: {max_len}",
            f"(int) Longest history; the files keep the last {max_len}.",
        ),
        (
            "domain_field: domain",
            "(str) Item field naming each item's domain (domain-aware evaluation).",
        ),
        ("protocol: full", "(str) Evaluation protocol, a file of properties/protocol/."),
        ("use_image: False", "(bool) No image vectors yet; `llmemf-data features` turns this on."),
        ("use_text: False", "(bool) No text vectors yet; `llmemf-data features` turns this on."),
    ]
    width = max(len(key) for key, _ in keys) + 1
    header = [
        f"# {name}: cross-domain dataset written by `llmemf-data {tool}`; statistics in stats.md.",
        f"# {name}.{{train,valid,test}}.inter: one prediction case per row (history, target).",
        f"# {name}.inter: every interaction, each user's in time order. For RecBole's own",
        "# leave-one-out split on it, pass benchmark_filename: ~, alias_of_item_id: ~ and",
        "# load_col: {inter: [user_id, item_id, timestamp], item: [item_id, domain]}.",
    ]
    body = [f"{key:<{width}}# {comment}" if comment else key for key, comment in keys]
    return "\n".join(header + body) + "\n"


def _timestamp_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def write_dataset(
    data: CrossDomainData, out_dir: str | Path, tool: str, build_info: dict, stats: dict
) -> Path:
    """Write every file of ``<out_dir>/<name>/``, each atomically; the stats and yaml come last."""
    folder = Path(out_dir) / data.name
    columns = ["token", "domain", "title"] + [
        extra
        for extra in ("description", "image_url")
        if any(getattr(i, extra) for i in data.items)
    ]
    write_atomic_file(
        folder / f"{data.name}.item",
        [ITEM_COLUMNS[c] for c in columns],
        ([getattr(item, c) for c in columns] for item in data.items),
    )
    write_atomic_file(
        folder / f"{data.name}.inter",
        INTER_HEADER,
        ((user, item, _timestamp_text(ts)) for user, item, ts in data.interactions),
    )
    for split in SPLITS:
        write_atomic_file(
            folder / f"{data.name}.{split}.inter",
            CASE_HEADER,
            (
                (c.user, " ".join(c.history), c.target, _timestamp_text(c.timestamp))
                for c in tqdm(data.cases[split], desc=f"write {split}", disable=None, leave=False)
            ),
        )
    with atomic_write(folder / "stats.json") as file:
        json.dump({**stats, "build": build_info}, file, indent=2)
        file.write("\n")
    with atomic_write(folder / "stats.md") as file:
        file.write(format_stats(stats))
    with atomic_write(folder / f"{data.name}.yaml") as file:
        file.write(dataset_yaml(data.name, data.max_len, tool))
    return folder


def finish(data: CrossDomainData, out_dir: str | Path, tool: str, build_info: dict) -> int:
    """Check, then write and print the statistics; nothing is written when a check fails."""
    report = check_data(data)
    for warning in report.warnings:
        logger.warning(warning)
    if not report.ok:
        print(
            f"llmemf-data {tool}: checks failed, nothing written:\n{report.format()}",
            file=sys.stderr,
        )
        return 1
    stats = compute_stats(data)
    folder = write_dataset(data, out_dir, tool, build_info, stats)
    print(format_stats(stats))
    for note in data.notes:
        logger.warning(note)  # also on stderr, where logs go
    print(f"checks passed; wrote {folder}")
    return 0


# ---------------------------------------------------------------------------------------------
# Amazon raw files


def find_category_files(raw_dir: str | Path, category: str) -> tuple[Path, Path | None]:
    """The review file of a category (2014 5-core first, then 2018) and its metadata file."""
    raw_dir = Path(raw_dir)
    reviews = [raw_dir / pattern.format(category) for pattern in REVIEW_FILE_NAMES]
    found = next((path for path in reviews if path.is_file()), None)
    if found is None:
        tried = ", ".join(path.name for path in reviews)
        raise FileNotFoundError(
            f"no review file for category '{category}' in {raw_dir} (tried {tried})"
        )
    meta = next(
        (
            raw_dir / p.format(category)
            for p in META_FILE_NAMES
            if (raw_dir / p.format(category)).is_file()
        ),
        None,
    )
    return found, meta


def parse_record(line: str) -> dict:
    """A JSON line, or a Python literal line (the 2014 metadata files); raises ValueError."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        try:
            record = ast.literal_eval(line.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ValueError("bad JSON (neither a JSON object nor a Python literal)") from None
    if not isinstance(record, dict):
        raise ValueError(f"bad JSON: expected an object, got {type(record).__name__}")
    return record


def review_fields(record: dict) -> tuple[str, str, float]:
    """``(reviewerID, asin, unixReviewTime)`` of a review record; raises ValueError."""
    for key in ("reviewerID", "asin", "unixReviewTime"):
        if record.get(key) in (None, ""):
            raise ValueError(f"missing field '{key}'")
    value = record["unixReviewTime"]
    try:
        if isinstance(value, bool):
            raise ValueError
        timestamp = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"non-numeric timestamp {value!r} in 'unixReviewTime'") from None
    if not math.isfinite(timestamp):
        raise ValueError(f"non-numeric timestamp {value!r} in 'unixReviewTime'")
    return str(record["reviewerID"]), str(record["asin"]), timestamp


def iter_reviews(path: Path, errors: InputErrors, desc: str) -> Iterator[tuple[str, str, float]]:
    for lineno, line in input_lines(path, desc):
        if not line.strip() or errors.known(path, lineno):
            continue
        try:
            yield review_fields(parse_record(line))
        except ValueError as error:
            errors.report(path, lineno, str(error))


@dataclass
class InteractionBuffer:
    """Interactions as compact columns: about 20 bytes each, plus one entry per user and item."""

    users: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    item_domain: list[int] = field(default_factory=list)
    conflicts: set[str] = field(default_factory=set)  # ASINs reviewed in both categories
    user: array = field(default_factory=lambda: array("i"))
    item: array = field(default_factory=lambda: array("i"))
    domain: array = field(default_factory=lambda: array("b"))
    time: array = field(default_factory=lambda: array("d"))

    def add(self, user: str, asin: str, domain: int, timestamp: float) -> None:
        item = self.items.setdefault(asin, len(self.items))
        if item == len(self.item_domain):
            self.item_domain.append(domain)
        elif self.item_domain[item] != domain:
            self.conflicts.add(asin)
        self.user.append(self.users.setdefault(user, len(self.users)))
        self.item.append(item)
        self.domain.append(domain)
        self.time.append(timestamp)


def read_common_users(review_files: Sequence[Path], errors: InputErrors) -> InteractionBuffer:
    """Interactions of the users who reviewed in both categories (three streaming passes)."""
    first, second = sorted(range(2), key=lambda d: review_files[d].stat().st_size)
    users_first = {
        user
        for user, _, _ in iter_reviews(
            review_files[first], errors, f"{review_files[first].name}: users (1/3)"
        )
    }
    buffer = InteractionBuffer()
    for user, asin, ts in iter_reviews(
        review_files[second], errors, f"{review_files[second].name}: reviews (2/3)"
    ):
        if user in users_first:
            buffer.add(user, asin, second, ts)
    common = set(buffer.users)
    del users_first
    for user, asin, ts in iter_reviews(
        review_files[first], errors, f"{review_files[first].name}: reviews (3/3)"
    ):
        if user in common:
            buffer.add(user, asin, first, ts)
    return buffer


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


_ASIN_IN_LINE = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]*)['"]""")


def read_meta(path: Path, wanted: set[str], errors: InputErrors) -> dict[str, dict[str, str]]:
    """Title, description and image URL of the ``wanted`` ASINs (first record of each).

    Lines whose ``asin`` is plainly not wanted are skipped without being parsed, which keeps
    multi-GB metadata files fast; their other defects go unreported.
    """
    found: dict[str, dict[str, str]] = {}
    for lineno, line in input_lines(path, f"{path.name}: metadata"):
        match = _ASIN_IN_LINE.search(line)
        if not line.strip() or (match and match.group(1) not in wanted):
            continue
        try:
            record = parse_record(line)
            if record.get("asin") in (None, ""):
                raise ValueError("missing field 'asin'")
        except ValueError as error:
            errors.report(path, lineno, str(error))
            continue
        asin = str(record["asin"])
        if asin in wanted and asin not in found:
            found[asin] = meta_fields(record)
    return found


def meta_fields(record: dict) -> dict[str, str]:
    """2014: ``title``, ``description`` (str), ``imUrl``; 2018: description and images are lists."""
    image = (
        record.get("imUrl")
        or record.get("imageURLHighRes")
        or record.get("imageURL")
        or record.get("image")
    )
    if isinstance(image, (list, tuple)):
        image = image[0] if image else ""
    return {
        "title": html.unescape(clean_text(record.get("title"))),
        "description": html.unescape(clean_text(record.get("description"))),
        "image_url": "".join(str(image or "").split()),
    }


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
    sequences = merged_sequences(buffer, keep)
    if not sequences:
        raise ValueError(
            "no user is left after filtering; lower --min-user-inter / "
            "--min-item-inter / --min-domain-items"
        )
    users = split_users(sequences, spec.valid_ratio, spec.test_ratio)
    cases, n_sequences = build_cases(sequences, users, spec.max_len, spec.eval_history_in_train)
    items = _items(spec, files, buffer, np.unique(item[keep]), errors)
    interactions = [(u, asin, ts) for u in sorted(sequences) for asin, ts in sequences[u]]
    data = CrossDomainData(
        spec.name, spec.domains, items, interactions, cases, spec.max_len, n_sequences
    )
    build_info = {
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
    return data, build_info


def _items(
    spec: AmazonSpec, files, buffer: InteractionBuffer, kept_ids: np.ndarray, errors: InputErrors
) -> list[Item]:
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


def run_build(tool: str, build_fn, spec, on_error: str):
    """Run a tool's ``build_fn(spec, errors)``; report bad input and skipped lines. None on failure."""
    errors = InputErrors(on_error)
    try:
        built = build_fn(spec, errors)
    except (MalformedInputError, FileNotFoundError, ValueError) as error:
        print(f"llmemf-data {tool}: {error}", file=sys.stderr)
        return None
    for line in errors.summary():
        print(f"WARNING: {line}")
    return built
