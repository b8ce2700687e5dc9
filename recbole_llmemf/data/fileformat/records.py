"""The records of a cross-domain dataset in memory: items, prediction cases, a whole dataset, a
check report; and the file names and headers of the format."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

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
