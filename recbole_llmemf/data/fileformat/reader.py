"""Reading a dataset folder of either layout into a :class:`CrossDomainData`, with ``file:line``
errors, in the field names and separators of its yaml (RecBole's config keys)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from recbole_llmemf.data.fileformat.records import SPLITS, Case, CrossDomainData, Item
from recbole_llmemf.utils.errors import DataError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")  # RecBole's FeatureType values
# pandas reads these as missing (read_csv's default na_values), even in a column read as str;
# RecBole then fills a missing token with [PAD] and a missing float with the column's mean.
PANDAS_NA = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)  # fmt: skip
FIELD_LIMIT = 131_072  # csv.field_size_limit(): RecBole's pandas reader (engine="python") uses csv
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
        with open(path, "rb") as file:  # bytes: a line that does not decode is a problem too
            lines = enumerate(file, start=1)
            header = self._decoded(path, *next(lines, (1, b"")))
            if header is None:
                raise FormatError(self.problems.pop())
            names, checked = self._columns(path, source, required, header)
            empty = True
            for lineno, raw in lines:
                line = self._decoded(path, lineno, raw)
                if not line:
                    continue  # pandas skips blank lines too; an undecodable one is a problem
                empty = False
                values = line.split(layout.field_separator)
                problem = _line_problem(values, names, checked)
                if problem:
                    self.problems.append(f"{path}:{lineno}: {problem}")
                else:
                    yield lineno, dict(zip(names, values))
        if empty:
            self.problems.append(
                f"{path}: no rows after the header (RecBole would stop with 'Some feat is empty')"
            )

    def _decoded(self, path: Path, lineno: int, raw: bytes) -> str | None:
        encoding = self.layout.encoding or "utf-8"  # RecBole's default (overall.yaml)
        try:
            return raw.decode(encoding).rstrip("\r\n")
        except UnicodeDecodeError as error:
            self.problems.append(
                f"{path}:{lineno}: not {encoding} text (byte "
                f"{raw[error.start]:#04x} at character {error.start + 1})"
            )
            return None

    def _columns(self, path: Path, source: str, required: Sequence[str], header: str):
        """The header's field names, and ``(index, name, kind)`` of the fields to check."""
        layout = self.layout
        names, types = [], []
        for column in header.split(layout.field_separator):
            name, _, kind = column.partition(":")
            if kind not in FIELD_TYPES:
                raise FormatError(
                    f"{path}:1: field '{column}' needs a type, name:{'|'.join(FIELD_TYPES)}"
                )
            names.append(name)
            types.append(kind)
        missing = [column for column in required if column not in names]
        if missing:
            raise FormatError(f"{path}:1: header lacks {', '.join(missing)}; got {names}")
        checked = [
            (i, name, "float" if name == layout.time else kind)  # times order the cases
            for i, (name, kind) in enumerate(zip(names, types))
            if name in required
            or name == layout.time
            or (kind in ("token", "float") and layout.loads(source, name))
        ]
        return names, checked

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


def _line_problem(values: list[str], names: list[str], checked: list) -> str:
    """What RecBole would read wrongly in a line's ``values`` ('' where nothing)."""
    if len(values) != len(names):
        return f"expected {len(names)} fields, got {len(values)} (header: {', '.join(names)})"
    for index, value in enumerate(values):
        if len(value) > FIELD_LIMIT:
            return (
                f"field '{names[index]}' has {len(value):,} characters, more than the "
                f"{FIELD_LIMIT:,} that RecBole's reader takes (Python's csv.field_size_limit)"
            )
    for i, name, kind in checked:
        problem = _value_problem(values[i], name, kind)
        if problem:
            return problem
    return ""


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
    items = _read_items(reader)
    reader.known = {item.token for item in items}
    plain_path = layout.inter_path()
    read_plain = not layout.benchmark or (all_interactions and plain_path.is_file())
    interactions = _read_interactions(reader, plain_path) if read_plain else []
    cases = _read_cases(reader)
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


def _read_items(reader: _Reader) -> list[Item]:
    """The rows of ``<name>.item``."""
    layout = reader.layout
    return [
        Item(
            token=row[layout.iid],
            domain=row[layout.domain],
            **{attr: row.get(attr, "") for attr in ("title", "description", "image_url")},
        )
        for _, row in reader.rows(layout.item_path, "item", (layout.iid, layout.domain))
    ]


def _read_interactions(reader: _Reader, path: Path) -> list[tuple[str, str, float]]:
    """``(user, item, time)`` of every row of ``<name>.inter``."""
    layout = reader.layout
    required = [layout.uid, layout.iid]
    if layout.time and layout.loads("inter", layout.time):
        required.append(layout.time)
    interactions = []
    for lineno, row in reader.rows(path, "inter", required):
        reader.use((row[layout.iid],), path, lineno)
        interactions.append((row[layout.uid], row[layout.iid], reader.timestamp(row, lineno)))
    return interactions


def _read_cases(reader: _Reader) -> dict[str, list[Case]]:
    """The cases of each benchmark file, by split; none in the plain layout."""
    layout = reader.layout
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
    return cases


def _written_by_our_tools(folder: Path) -> bool:
    """``llmemf-data amazon`` and ``c2dsr`` write ASIN item tokens and record themselves."""
    try:
        stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return str(stats.get("build", {}).get("tool", "")).startswith("llmemf-data")
