"""Reading the raw Amazon review files, streaming the gzip files.

The 2014 release (``reviews_<Cat>_5.json.gz``, ``meta_<Cat>.json.gz`` whose lines are Python
literals) and the 2018 release (``<Cat>.json.gz`` or ``<Cat>_5.json.gz``, ``meta_<Cat>.json.gz``,
JSON lines). Of the reviews only the users active in both categories are kept: the smaller review
file is read first for its user set, the other keeps only those users' reviews, then the first file
is read again for the common users; memory holds one user set and the common users' interactions,
never the whole files. The metadata gives the kept items' title, description and image URL.
"""

from __future__ import annotations

import ast
import html
import json
import math
import re
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recbole_llmemf.dataset_tools.importing import InputErrors, clean_text, input_lines

REVIEW_FILE_NAMES = ("reviews_{}_5.json.gz", "{}_5.json.gz", "reviews_{}.json.gz", "{}.json.gz")
META_FILE_NAMES = ("meta_{}.json.gz",)


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
