"""llmemf-data amazon on hand-written gzip files of both Amazon releases; exact expected output."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from llmemf_cli.data import amazon as amazon_cli
from recbole_llmemf.data.fileformat.reader import read_folder
from recbole_llmemf.dataset_tools import amazon, amazon_raw, importing

M = {k: f"MOVIE0000{k}" for k in range(1, 5)}
B = {k: f"BOOK00000{k}" for k in range(1, 5)}
# (user, item number, unixReviewTime). LONER's only fellow reviewer of MOVIE00004 is nobody, so M4
# falls to the item k-core, then LONER (one movie left), then BOOK000004 (U4 alone): the filter must
# iterate. ONLYMOVIES has no book. U6 reviewed MOVIE00001 twice (the earliest stays). U5 and U6 have
# ties: same time, source domain first, then ASIN.
MOVIE_REVIEWS = [
    ("U1", 1, 10),
    ("U2", 1, 11),
    ("U1", 2, 20),
    ("U2", 2, 21),
    ("U3", 2, 40),
    ("U3", 3, 41),
    ("U4", 3, 50),
    ("U4", 1, 51),
    ("LONER", 4, 5),
    ("LONER", 1, 6),
    ("ONLYMOVIES", 1, 1),
    ("ONLYMOVIES", 2, 2),
    ("ONLYMOVIES", 3, 3),
    ("U5", 2, 60),
    ("U5", 3, 61),
    ("U6", 1, 70),
    ("U6", 3, 71),
    ("U6", 1, 75),
]
BOOK_REVIEWS = [
    ("U1", 1, 15),
    ("U2", 1, 12),
    ("U1", 2, 30),
    ("U2", 2, 31),
    ("U1", 3, 35),
    ("U3", 2, 42),
    ("U3", 3, 43),
    ("U4", 3, 52),
    ("U4", 1, 53),
    ("U4", 4, 54),
    ("LONER", 4, 7),
    ("LONER", 1, 8),
    ("U5", 2, 60),
    ("U5", 3, 60),
    ("U6", 1, 72),
    ("U6", 3, 72),
]
OPTIONS = [
    "--source", "Movies", "--target", "Books", "--name", "tiny", "--min-user-inter", "4",
    "--min-item-inter", "2", "--min-domain-items", "2", "--valid-ratio", "0.17",
    "--test-ratio", "0.17", "--max-len", "3",
]  # fmt: skip

EXPECTED = {
    "tiny.item": """\
item_id:token	domain:token	title:token_seq	description:token_seq	image_url:token
MOVIE00001	Movies	First Movie	Line one line two	http://img/m1.jpg
MOVIE00002	Movies	Tom & Jerry\t\t
MOVIE00003	Movies	Third\t\t
BOOK000001	Books	Book One	A B	https://img/b1.jpg
BOOK000002	Books	Book Two\t\t
BOOK000003	Books\t\t\t
""",
    "tiny.inter": """\
user_id:token	item_id:token	timestamp:float
U1	MOVIE00001	10
U1	BOOK000001	15
U1	MOVIE00002	20
U1	BOOK000002	30
U1	BOOK000003	35
U2	MOVIE00001	11
U2	BOOK000001	12
U2	MOVIE00002	21
U2	BOOK000002	31
U3	MOVIE00002	40
U3	MOVIE00003	41
U3	BOOK000002	42
U3	BOOK000003	43
U4	MOVIE00003	50
U4	MOVIE00001	51
U4	BOOK000003	52
U4	BOOK000001	53
U5	MOVIE00002	60
U5	BOOK000002	60
U5	BOOK000003	60
U5	MOVIE00003	61
U6	MOVIE00001	70
U6	MOVIE00003	71
U6	BOOK000001	72
U6	BOOK000003	72
""",
    "tiny.train.inter": """\
user_id:token	item_id_list:token_seq	item_id:token	timestamp:float
U1	MOVIE00001	BOOK000001	15
U1	MOVIE00001 BOOK000001	MOVIE00002	20
U1	MOVIE00001 BOOK000001 MOVIE00002	BOOK000002	30
U1	BOOK000001 MOVIE00002 BOOK000002	BOOK000003	35
U2	MOVIE00001	BOOK000001	12
U2	MOVIE00001 BOOK000001	MOVIE00002	21
U2	MOVIE00001 BOOK000001 MOVIE00002	BOOK000002	31
U3	MOVIE00002	MOVIE00003	41
U3	MOVIE00002 MOVIE00003	BOOK000002	42
U3	MOVIE00002 MOVIE00003 BOOK000002	BOOK000003	43
U4	MOVIE00003	MOVIE00001	51
U4	MOVIE00003 MOVIE00001	BOOK000003	52
U4	MOVIE00003 MOVIE00001 BOOK000003	BOOK000001	53
U5	MOVIE00002	BOOK000002	60
U5	MOVIE00002 BOOK000002	BOOK000003	60
U6	MOVIE00001	MOVIE00003	71
U6	MOVIE00001 MOVIE00003	BOOK000001	72
""",
    # latest-ending user (U6, 72) -> test, the next (U5, 61) -> valid
    "tiny.valid.inter": """\
user_id:token	item_id_list:token_seq	item_id:token	timestamp:float
U5	MOVIE00002 BOOK000002 BOOK000003	MOVIE00003	61
""",
    "tiny.test.inter": """\
user_id:token	item_id_list:token_seq	item_id:token	timestamp:float
U6	MOVIE00001 MOVIE00003 BOOK000001	BOOK000003	72
""",
}
STATS_TABLE = """\
| Domain | #Items | #Items used | #Interactions | #Train | #Valid | #Test | Avg.length |
|---|---:|---:|---:|---:|---:|---:|---:|
| Movies | 3 | 3 | 12 | 5 | 1 | 0 | 2.00 |
| Books | 3 | 3 | 13 | 12 | 0 | 1 | 2.17 |
| all | 6 | 6 | 25 | 17 | 1 | 1 | 4.17 |
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])


def write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.writelines(line + "\n" for line in lines)
    return path


def movie_lines() -> list[str]:
    """2014 release: JSON lines, one of them a Python literal."""
    lines = []
    for user, number, time in MOVIE_REVIEWS:
        record = {"reviewerID": user, "asin": M[number], "overall": 5.0, "unixReviewTime": time}
        lines.append(repr(record) if (user, number) == ("U3", 2) else json.dumps(record))
    return lines


def book_lines() -> list[str]:
    """2018 release: JSON lines with the newer fields."""
    return [
        json.dumps(
            {
                "overall": 4.0,
                "verified": True,
                "reviewerID": user,
                "asin": B[number],
                "unixReviewTime": time,
                "style": {"Format:": " Paperback"},
            }
        )
        for user, number, time in BOOK_REVIEWS
    ]


def write_raw(
    folder: Path, movies: list[str] | None = None, books: list[str] | None = None
) -> Path:
    folder.mkdir(exist_ok=True)
    write_gz(folder / "reviews_Movies_5.json.gz", movie_lines() if movies is None else movies)
    write_gz(folder / "Books.json.gz", book_lines() if books is None else books)
    write_gz(folder / "meta_Movies.json.gz", [  # 2014 metadata: Python literals
        repr({"asin": M[1], "title": "First\tMovie", "imUrl": "http://img/m1.jpg",
              "description": "Line one\nline two", "categories": [["Movies"]]}),
        repr({"asin": M[2], "title": "Tom &amp; Jerry", "related": {"also_bought": [M[3]]}}),
        repr({"asin": M[3], "title": "Third"}),
        repr({"asin": M[4], "title": "Dropped by the filter"}),
    ])  # fmt: skip
    write_gz(folder / "meta_Books.json.gz", [  # 2018 metadata: JSON, lists; BOOK000003 has none
        json.dumps({"asin": B[1], "title": "Book One", "description": ["A", "B"],
                    "imageURLHighRes": ["https://img/b1.jpg"], "imageURL": ["https://img/small.jpg"]}),
        json.dumps({"asin": B[2], "title": "Book Two", "description": [], "imageURL": []}),
    ])  # fmt: skip
    return folder


def run(raw: Path, *extra: str) -> int:
    return amazon_cli.main([*OPTIONS, "--raw-dir", str(raw), "--out", "out", *extra])


def test_both_releases_filter_and_split_exactly(tmp_path, capsys):
    assert run(write_raw(tmp_path / "raw")) == 0
    for name, text in EXPECTED.items():
        assert (tmp_path / "out" / "tiny" / name).read_text(encoding="utf-8") == text, name
    printed = capsys.readouterr().out
    assert STATS_TABLE in printed
    assert STATS_TABLE in (tmp_path / "out" / "tiny" / "stats.md").read_text()
    stats = json.loads((tmp_path / "out" / "tiny" / "stats.json").read_text())
    assert stats["users"] == 6 and stats["train_sequences"] == 6
    assert stats["build"]["common_users"] == 7  # U1-U6 and LONER; ONLYMOVIES never read a book
    assert stats["build"]["after_deduplication"] == 30  # 31 reviews of common users, one repeat
    config = (tmp_path / "out" / "tiny" / "tiny.yaml").read_text()
    assert (
        "MAX_ITEM_LIST_LENGTH: 3 " in config
        and "benchmark_filename: [train, valid, test]" in config
    )
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_written_folder_passes_the_checks(tmp_path):
    assert run(write_raw(tmp_path / "raw")) == 0
    data = read_folder(tmp_path / "out" / "tiny")
    assert data.domains == ("Movies", "Books") and data.max_len == 3


def test_valid_test_histories_can_be_left_out_of_training(tmp_path):
    assert run(write_raw(tmp_path / "raw"), "--no-eval-history-in-train") == 0
    train = (tmp_path / "out" / "tiny" / "tiny.train.inter").read_text().splitlines()
    assert {line.split("\t")[0] for line in train[1:]} == {"U1", "U2", "U3", "U4"}


def test_domain_names(tmp_path):
    assert run(write_raw(tmp_path / "raw"), "--domain-names", "Movie", "Book") == 0
    item_file = (tmp_path / "out" / "tiny" / "tiny.item").read_text().splitlines()
    assert [line.split("\t")[1] for line in item_file[1:]] == ["Movie"] * 3 + ["Book"] * 3


MALFORMED = [  # (line inserted into Books.json.gz, expected message)
    ('{"reviewerID": "U1", "asin": ', "bad JSON (neither a JSON object nor a Python literal)"),
    ('{"reviewerID": "U1", "asin": "BOOK000001"}', "missing field 'unixReviewTime'"),
    ('{"asin": "BOOK000001", "unixReviewTime": 3}', "missing field 'reviewerID'"),
    ('{"reviewerID": "U1", "asin": "BOOK000001", "unixReviewTime": "yesterday"}',
     "non-numeric timestamp 'yesterday' in 'unixReviewTime'"),
]  # fmt: skip


@pytest.mark.parametrize(("bad_line", "message"), MALFORMED)
def test_malformed_line_stops_with_file_and_line_and_writes_nothing(
    tmp_path, capsys, bad_line, message
):
    books = book_lines()
    books.insert(4, bad_line)  # line 5
    raw = write_raw(tmp_path / "raw", books=books)
    assert run(raw) == 1
    assert f"{raw / 'Books.json.gz'}:5: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("bad_line", "message"), MALFORMED[:2])
def test_malformed_line_skipped_and_counted(tmp_path, capsys, caplog, bad_line, message):
    movies = movie_lines()
    movies.insert(0, bad_line)  # line 1 of the file read twice: reported once
    raw = write_raw(tmp_path / "raw", movies=movies)
    assert run(raw, "--on-error", "skip") == 0
    path = raw / "reviews_Movies_5.json.gz"
    assert f"{path}: skipped 1 malformed lines" in capsys.readouterr().out
    assert f"{path}:1: {message}" in caplog.text
    for name, text in EXPECTED.items():
        assert (tmp_path / "out" / "tiny" / name).read_text(encoding="utf-8") == text, name
    stats = json.loads((tmp_path / "out" / "tiny" / "stats.json").read_text())
    assert stats["build"]["skipped_lines"] == {str(path): 1}


def test_missing_review_file_names_what_was_tried(tmp_path, capsys):
    raw = write_raw(tmp_path / "raw")
    (raw / "Books.json.gz").unlink()
    assert run(raw) == 1
    err = capsys.readouterr().err
    assert "no review file for category 'Books'" in err and "reviews_Books_5.json.gz" in err


def test_parse_record_reads_json_and_python_literals():
    assert amazon_raw.parse_record('{"asin": "X"}') == {"asin": "X"}
    assert amazon_raw.parse_record("{'asin': 'X', 'price': 1.5}\n") == {"asin": "X", "price": 1.5}
    for bad in ("{'asin': ", "[1, 2]", "__import__('os')"):
        with pytest.raises(ValueError):
            amazon_raw.parse_record(bad)


def test_k_core_iterates_until_stable():
    # user 0: items 0, 1 (domain 0), 2 (domain 1); user 1: items 0, 2; user 2: item 3 (domain 1)
    user = np.array([0, 0, 0, 1, 1, 2])
    item = np.array([0, 1, 2, 0, 2, 3])
    domain = np.array([0, 0, 1, 0, 1, 1])
    keep = amazon.k_core(user, item, domain, min_user=2, min_item=2, min_domain=1)
    # item 1 (one user) goes; user 2 has no domain-0 item; then everything left is stable
    assert keep.tolist() == [True, False, True, True, True, False]
    keep = amazon.k_core(user, item, domain, min_user=3, min_item=1, min_domain=1)
    assert keep.tolist() == [True, True, True, False, False, False]


def test_earliest_interaction_per_pair_is_kept():
    user, item = np.array([0, 0, 0, 1]), np.array([5, 5, 6, 5])
    time = np.array([9.0, 3.0, 1.0, 2.0])
    assert amazon.earliest_per_pair(user, item, time).tolist() == [False, True, True, True]


def test_cases_keep_the_last_items_only():
    sequence = [(f"I{k}", float(k)) for k in range(5)]
    train = importing.train_cases("u", sequence, max_len=2)
    assert [(c.history, c.target) for c in train] == [
        (("I0",), "I1"),
        (("I0", "I1"), "I2"),
        (("I1", "I2"), "I3"),
        (("I2", "I3"), "I4"),
    ]
    last = importing.eval_case("u", sequence, max_len=3)
    assert (last.history, last.target, last.timestamp) == (("I1", "I2", "I3"), "I4", 4.0)


def test_asin_in_both_categories_is_dropped(tmp_path, caplog):
    books = [*book_lines(), json.dumps({"reviewerID": "U1", "asin": M[4], "unixReviewTime": 99})]
    assert run(write_raw(tmp_path / "raw", books=books)) == 0
    assert "1 ASINs occur in both categories and are dropped" in caplog.text
    for name, text in EXPECTED.items():  # MOVIE00004 would have fallen to the k-core anyway
        assert (tmp_path / "out" / "tiny" / name).read_text(encoding="utf-8") == text, name
    stats = json.loads((tmp_path / "out" / "tiny" / "stats.json").read_text())
    assert stats["build"]["asins_in_both_categories"] == 1
