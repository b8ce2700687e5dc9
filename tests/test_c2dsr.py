"""llmemf-data c2dsr on hand-written split files, on the shared Food-Kitchen files, and RecBole
loading what it writes."""

from __future__ import annotations

import json
import random
import statistics
import sys
from pathlib import Path

import pytest

from llmemf_cli.data import c2dsr as c2dsr_cli
from recbole_llmemf.data.fileformat.checks import check_data
from recbole_llmemf.data.fileformat.reader import read_folder
from recbole_llmemf.dataset_tools import c2dsr

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FOOD_KITCHEN = SHARED / "food_kitchen"

# |A| = 3, |B| = 3: global indexes 0-2 are A items, 3-5 are B items (B's local index + 3).
ALIST = "11\tA000000000\t0\n12\tA000000001\t1\n13\tA000000002\t2\n"
BLIST = "21\tB000000000\t0\n22\tB000000001\t1\n23\tB000000002\t2\n"
USERLIST = "REVIEWER0\t0\nREVIEWER1\t1\nREVIEWER2\t2\n"
# File order is not time order: the latest A item and then the latest B item come last.
VALID = "0\t7\t0|100|d|\t3|200|d|\t1|300|d|\t4|150|d|\n"  # -> 0 3 4 1, target A000000001 (A)
TEST = (
    "1\t2\t2|10|d|\t5|20|d|\t0|40|d|\t3|40|d|\n"  # tie at 40: B (later in the file) is the target
    "2\t9\t1|5|d|\t4|8|d|\t2|7|d|\n"  # -> 1 2 4, target B000000001
)
TITLES = "asin\ttitle\nA000000000\tAlpha\tbar\nB000000002\tGamma\nZZZ0000000\tnot listed\n"

EXPECTED = {
    "fk.item": """\
item_id:token	domain:token	title:token_seq
A000000000	Food	Alpha bar
A000000001	Food\t
A000000002	Food\t
B000000000	Kitchen\t
B000000001	Kitchen\t
B000000002	Kitchen	Gamma
""",
    "fk.inter": """\
user_id:token	item_id:token	timestamp:float
REVIEWER0	A000000000	100
REVIEWER0	B000000001	150
REVIEWER0	B000000000	200
REVIEWER0	A000000001	300
REVIEWER1	A000000002	10
REVIEWER1	B000000002	20
REVIEWER1	A000000000	40
REVIEWER1	B000000000	40
REVIEWER2	A000000001	5
REVIEWER2	A000000002	7
REVIEWER2	B000000001	8
""",
    "fk.train.inter": """\
user_id:token	item_id_list:token_seq	item_id:token	timestamp:float
REVIEWER0	A000000000	B000000001	150
REVIEWER0	A000000000 B000000001	B000000000	200
REVIEWER1	A000000002	B000000002	20
REVIEWER1	A000000002 B000000002	A000000000	40
REVIEWER2	A000000001	A000000002	7
""",
    "fk.valid.inter": """\
user_id:token	item_id_list:token_seq	item_id:token	timestamp:float
REVIEWER0	B000000001 B000000000	A000000001	300
""",
    "fk.test.inter": """\
user_id:token	item_id_list:token_seq	item_id:token	timestamp:float
REVIEWER1	B000000002 A000000000	B000000000	40
REVIEWER2	A000000001 A000000002	B000000001	8
""",
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])


def write_split(
    folder: Path,
    valid: str = VALID,
    test: str = TEST,
    train: str | None = None,
    alist: str = ALIST,
    blist: str = BLIST,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "Alist.txt": alist,
        "Blist.txt": blist,
        "userlist.txt": USERLIST,
        "validdata_new.txt": valid,
        "testdata_new.txt": test,
        "titles_x.tsv": TITLES,
    }
    if train is not None:
        files["traindata_new.txt"] = train
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def run(folder: Path, *extra: str) -> int:
    return c2dsr_cli.main([str(folder), "--out", "out", "--name", "fk", "--max-len", "2", *extra])


def test_split_files_imported_exactly(tmp_path, capsys):
    assert run(write_split(tmp_path / "food_kitchen")) == 0
    for name, text in EXPECTED.items():
        assert (tmp_path / "out" / "fk" / name).read_text(encoding="utf-8") == text, name
    out = capsys.readouterr().out
    assert "| Food | 3 | 3 | 6 | 2 | 1 | 0 | 2.00 |" in out
    assert "| Kitchen | 3 | 3 | 5 | 3 | 0 | 2 | 1.67 |" in out


def test_missing_train_file_is_said_loudly(tmp_path, capsys, caplog):
    assert run(write_split(tmp_path / "food_kitchen")) == 0
    out = capsys.readouterr().out
    assert "**WARNING: no train file" in out and "REBUILT" in out
    assert "(its sample ids leave 7 training samples unpublished)" in out  # ids 0-9, 3 published
    assert "REBUILT" in caplog.text
    folder = tmp_path / "out" / "fk"
    assert "**WARNING: no train file" in (folder / "stats.md").read_text()
    stats = json.loads((folder / "stats.json").read_text())
    assert "REBUILT" in stats["notes"][0] and stats["build"]["train_file"] is False


def test_train_file_gives_the_training_cases(tmp_path, capsys):
    train = "2\t0\t5|1|d|\t0|2|d|\t3|3|d|\n"
    assert run(write_split(tmp_path / "food_kitchen", train=train)) == 0
    assert "WARNING" not in capsys.readouterr().out
    rows = (tmp_path / "out" / "fk" / "fk.train.inter").read_text().splitlines()
    assert rows[1:] == [
        "REVIEWER2\tB000000002\tA000000000\t2",
        "REVIEWER2\tB000000002 A000000000\tB000000000\t3",
    ]
    assert run(write_split(tmp_path / "food_kitchen", train=train), "--eval-history-in-train") == 0
    rows = (tmp_path / "out" / "fk" / "fk.train.inter").read_text().splitlines()
    assert len(rows) == 1 + 2 + 5


MALFORMED = [  # (test file text, line, message)
    (TEST + "2\t10\t1|5|d|\t9|8|d|\n", 3, "entry 2: unknown item index 9 (not in the item lists)"),
    (TEST + "2\t10\t1|5|d|\t4|soon|d|\n", 3, "entry 2: non-numeric timestamp 'soon'"),
    (TEST + "2\t10\t1|5|d|\t4||d|\n", 3, "entry 2 '4||d|': missing field (expected item|ts|date|)"),
    ("x\t10\t1|5|d|\t4|8|d|\n" + TEST, 1, "non-integer user index 'x'"),
    (TEST + "2\t10\t1|5|d|\n", 3, "expected user<TAB>sample_id<TAB>item|ts|date|<TAB>... with at "
     "least 2 entries, got 3 fields"),
]  # fmt: skip


@pytest.mark.parametrize(("test_text", "line", "message"), MALFORMED)
def test_malformed_line_stops_with_file_and_line_and_writes_nothing(
    tmp_path, capsys, test_text, line, message
):
    folder = write_split(tmp_path / "food_kitchen", test=test_text)
    assert run(folder) == 1
    assert f"{folder / 'testdata_new.txt'}:{line}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("test_text", "line", "message"), MALFORMED)
def test_malformed_line_skipped_and_counted(tmp_path, capsys, caplog, test_text, line, message):
    folder = write_split(tmp_path / "food_kitchen", test=test_text)
    assert run(folder, "--on-error", "skip") == 0
    path = folder / "testdata_new.txt"
    assert f"{path}: skipped 1 malformed lines" in capsys.readouterr().out
    assert f"{path}:{line}: {message}" in caplog.text
    for name, text in EXPECTED.items():
        assert (tmp_path / "out" / "fk" / name).read_text(encoding="utf-8") == text, name


def test_bad_item_list_line(tmp_path, capsys):
    folder = write_split(tmp_path / "food_kitchen", blist=BLIST + "24\tB000000003\n")
    assert run(folder) == 1
    assert f"{folder / 'Blist.txt'}:4: expected raw_id<TAB>ASIN<TAB>index, got 2 fields" in (
        capsys.readouterr().err
    )


def test_failed_checks_write_nothing(tmp_path, capsys):
    """An ASIN listed in both domains is caught by the checks before anything is written."""
    folder = write_split(tmp_path / "food_kitchen", blist=BLIST.replace("B000000002", "A000000002"))
    assert run(folder) == 1
    err = capsys.readouterr().err
    assert "checks failed, nothing written" in err
    assert "items belong to two domains (domains overlap): A000000002 in Food and Kitchen" in err
    assert not (tmp_path / "out").exists()


def test_missing_split_file(tmp_path, capsys):
    folder = write_split(tmp_path / "food_kitchen")
    (folder / "testdata_new.txt").unlink()
    assert run(folder) == 1
    assert "none of testdata_new.txt, test_new.txt found" in capsys.readouterr().err


def test_default_domain_names():
    assert c2dsr.default_domains(Path("x/food_kitchen")) == ("Food", "Kitchen")
    assert c2dsr.default_domains(Path("Movie-Book")) == ("Movie", "Book")
    assert c2dsr.default_domains(Path("split")) == ("A", "B")


# ---------------------------------------------------------------------------------------------
# The shared Food-Kitchen files: counts of PROVENANCE.md


@pytest.fixture(scope="module")
def food_kitchen(tmp_path_factory):
    if not (FOOD_KITCHEN / "validdata_new.txt").is_file():
        pytest.skip(f"shared Food-Kitchen data not found at {FOOD_KITCHEN}")
    out = tmp_path_factory.mktemp("fk")
    assert c2dsr_cli.main([str(FOOD_KITCHEN), "--out", str(out)]) == 0
    return out / "food_kitchen"


def _lines(name: str) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in open(FOOD_KITCHEN / name, encoding="utf-8")]


def test_food_kitchen_counts_of_provenance(food_kitchen):
    stats = json.loads((food_kitchen / "stats.json").read_text())
    table = stats["table"]
    assert (table["Food"]["valid"], table["Kitchen"]["valid"]) == (2722, 5451)
    assert (table["Food"]["test"], table["Kitchen"]["test"]) == (2747, 5659)
    assert (table["Food"]["items"], table["Kitchen"]["items"]) == (29207, 34886)
    assert (table["Food"]["items_used"], table["Kitchen"]["items_used"]) == (24354, 29000)
    assert stats["users"] == 16579
    assert stats["build"]["samples"] == {"valid": 8173, "test": 8406}
    assert stats["build"]["history_length"] == {
        "valid": {"min": 5, "median": 8, "max": 14, "mean": 8.84},
        "test": {"min": 5, "median": 8, "max": 14, "mean": 8.85},
    }
    assert stats["build"]["max_sample_id"] == 50695
    assert "34,117 training samples unpublished" in stats["notes"][0]
    # titles: 8435 of Alist's and 22352 of Blist's ASINs have one
    assert stats["build"]["titled_items"] == 8435 + 22352
    # training cases: every prefix of every history, i.e. (entries - 2) per valid/test line
    entries = [
        len(fields) - 2
        for name in ("validdata_new.txt", "testdata_new.txt")
        for fields in _lines(name)
    ]
    assert table["all"]["train"] == sum(n - 2 for n in entries)
    assert table["all"]["interactions"] == sum(entries)


def test_food_kitchen_targets_are_c2dsr_targets(food_kitchen):
    """The target is the last entry after a stable sort by ts, as a plain re-reading finds it."""
    asins = [fields[1] for fields in _lines("Alist.txt")] + [
        fields[1] for fields in _lines("Blist.txt")
    ]
    users = {fields[1]: fields[0] for fields in _lines("userlist.txt")}
    for split, name in (("valid", "validdata_new.txt"), ("test", "testdata_new.txt")):
        expected = []
        for fields in _lines(name):
            entries = sorted((e.split("|") for e in fields[2:]), key=lambda e: int(e[1]))
            expected.append(
                (
                    users[fields[0]],
                    asins[int(entries[-1][0])],
                    " ".join(asins[int(e[0])] for e in entries[:-1][-15:]),
                )
            )
        rows = [
            line.rstrip("\n").split("\t")
            for line in open(food_kitchen / f"food_kitchen.{split}.inter")
        ]
        assert [(r[0], r[2], r[1]) for r in rows[1:]] == expected


def test_food_kitchen_passes_the_checks(food_kitchen):
    report = check_data(read_folder(food_kitchen))
    assert report.ok, report.format()


# ---------------------------------------------------------------------------------------------
# RecBole loads the benchmark files (one epoch per model, a tiny random split)


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory) -> Path:
    """60 users over 12 + 14 items, 3-6 items of each domain each, random days."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("tiny")
    folder = root / "raw"
    folder.mkdir()
    (folder / "Alist.txt").write_text("".join(f"{i}\tA{i:09d}\t{i}\n" for i in range(12)))
    (folder / "Blist.txt").write_text("".join(f"{i}\tB{i:09d}\t{i}\n" for i in range(14)))
    for name, users in (("validdata_new.txt", range(30)), ("testdata_new.txt", range(30, 60))):
        lines = []
        for user in users:
            items = rng.sample(range(12), rng.randint(3, 6)) + [
                12 + b for b in rng.sample(range(14), rng.randint(3, 6))
            ]
            entries = "\t".join(
                f"{item}|{1_400_000_000 + rng.randint(0, 50) * 86400}|d|" for item in items
            )
            lines.append(f"{user}\t{user}\t{entries}\n")
        (folder / name).write_text("".join(lines))
    out = root / "data"
    assert (
        c2dsr_cli.main(
            [str(folder), "--out", str(out), "--name", "tiny", "--domain-names", "X", "Y"]
        )
        == 0
    )
    return out


def test_recbole_reads_the_rows_as_written(tiny_split):
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    import recbole_llmemf  # noqa: F401  (registers the dataset yaml)

    config = Config(model="SASRec", dataset="tiny", config_dict={"data_path": str(tiny_split)})
    assert config["benchmark_filename"] == ["train", "valid", "test"]
    dataset = create_dataset(config)
    loaders = data_preparation(config, dataset)
    for split, loader in zip(("train", "valid", "test"), loaders):
        rows = [
            line.rstrip("\n").split("\t")
            for line in open(tiny_split / "tiny" / f"tiny.{split}.inter")
        ][1:]
        part = loader.dataset.inter_feat
        assert len(part) == len(rows)
        first = part[0]
        length = int(first["item_length"])
        assert (
            " ".join(dataset.id2token("item_id", first["item_id_list"][:length].numpy()))
            == rows[0][1]
        )
        assert dataset.id2token("item_id", [int(first["item_id"])])[0] == rows[0][2]
    assert dataset.item_num == 12 + 14 + 1  # every listed item, and padding


@pytest.mark.parametrize("model", ["SASRec", "LLMEMF", "BPR"])
def test_run_recbole_one_epoch(model, tiny_split, capsys):
    from llmemf_cli.run_recbole import main as run_recbole_main

    small = ["--hidden_size=16", "--embedding_size=16", "--inner_size=16", "--n_layers=1"]
    argv = [
        f"--model={model}",
        "--dataset=tiny",
        f"--data_path={tiny_split}",
        "--epochs=1",
        "--show_progress=False",
        *small,
    ]
    assert run_recbole_main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in table[-3:]}
    assert set(rows) == {"X", "Y", "all"}
    for all_cases, x, y in zip(rows["all"], rows["X"], rows["Y"]):  # a weighted mean of X and Y
        assert min(x, y) - 1e-4 <= all_cases <= max(x, y) + 1e-4
    assert statistics.fmean(rows["all"]) > 0.0


def test_recbole_leave_one_out_on_the_plain_inter_file(tiny_split):
    """<name>.inter with the overrides the yaml names: RecBole's last item of a user = target."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    import recbole_llmemf  # noqa: F401

    overrides = {
        "data_path": str(tiny_split),
        "benchmark_filename": None,
        "alias_of_item_id": None,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "domain"]},
    }
    config = Config(model="SASRec", dataset="tiny", config_dict=overrides)
    dataset = create_dataset(config)
    test = data_preparation(config, dataset)[2].dataset.inter_feat
    found = dict(
        zip(
            dataset.id2token("user_id", test["user_id"].numpy()),
            dataset.id2token("item_id", test["item_id"].numpy()),
        )
    )
    targets = {}
    for split in ("valid", "test"):
        for line in open(tiny_split / "tiny" / f"tiny.{split}.inter").readlines()[1:]:
            user, _, target, _ = line.rstrip("\n").split("\t")
            targets[user] = target
    assert found == targets
