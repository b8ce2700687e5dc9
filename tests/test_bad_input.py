"""Bad input gives a clear error or a warning, never a silent wrong result (issue 13, section 4).

RecBole loading a dataset that names a ``domain_field`` (the hook in recbole_llmemf/data/dataset.py),
``llmemf-data check`` on both layouts and on feature files, and the console commands printing
``file:line: what is wrong`` without a traceback.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from recbole.config import Config
from recbole.data import create_dataset

from llmemf_cli import bench as bench_cli
from llmemf_cli import data as data_cli
from llmemf_cli import demo as demo_cli
from llmemf_cli import run_recbole as run_recbole_cli
from llmemf_cli.data import check as check_cli
from recbole_llmemf.data.fileformat.records import Case, CrossDomainData, Item
from recbole_llmemf.dataset_tools import dataset_files
from recbole_llmemf.dataset_tools.synthetic import SyntheticSpec, generate
from recbole_llmemf.utils.errors import DataError, reports_data_errors


def build(tiny_dataset, model: str = "SASRec", **config):
    config = Config(
        model=model, dataset=tiny_dataset.name, config_dict={**tiny_dataset.config, **config}
    )
    return create_dataset(config)


def inter_lines(tiny_dataset) -> tuple[Path, list[str]]:
    path = tiny_dataset.data_path / "tiny" / "tiny.inter"
    return path, path.read_text().splitlines()


def rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def feature_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("recbole_llmemf.data.")]


# ---------------------------------------------------------------------------------------------
# RecBole loading a dataset with the plugin's options


def test_missing_field_is_an_error_not_a_mean_timestamp(tiny_dataset):
    path, lines = inter_lines(tiny_dataset)
    user, item, _ = lines[4].split("\t")
    lines[4] = f"{user}\t{item}"  # line 5 of the file lost its timestamp
    rewrite(path, lines)
    message = re.escape(f"{path}:5: expected 3 fields, got 2 (header: user_id, item_id, timestamp)")
    for model in ("SASRec", "LLMEMF"):
        with pytest.raises(DataError, match=message):
            build(tiny_dataset, model)
    # Without the plugin's options RecBole is left as it is: it fills the time with the column's
    # mean, far after this user's other interactions (1_600_000_000 + step), which makes this
    # line the user's last interaction: the test target.
    dataset = build(tiny_dataset, domain_field=None)
    mine = dataset.inter_feat["user_id"] == dataset.token2id("user_id", user)
    times = list(dataset.inter_feat["timestamp"][mine])
    assert sorted(times)[-2] < 1_600_000_100 < max(times)


@pytest.mark.parametrize("suffix", ["inter", "item", "itememb_txt"])
def test_a_byte_that_is_not_utf8_names_file_and_line_in_check_and_training(
    suffix, tiny_dataset, capsys
):
    path = tiny_dataset.data_path / "tiny" / f"tiny.{suffix}"
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b"\t", b"\xff\t", 1)  # a Latin-1 byte before the first tab
    path.write_bytes(b"\n".join(lines))
    where = re.escape(f"{path}:4: not utf-8 text (byte 0xff at character ")
    assert check_cli.main([str(path.parent)]) == 1
    assert re.search(where, "".join(capsys.readouterr()))
    with pytest.raises(DataError, match=where):
        build(tiny_dataset, "LLMEMF")


def test_a_field_longer_than_recboles_reader_takes_is_an_error(tiny_dataset, capsys):
    path = tiny_dataset.data_path / "tiny" / "tiny.item"
    lines = path.read_text().splitlines()
    token, domain, _ = lines[2].split("\t")
    lines[2] = f"{token}\t{domain}\t{'x' * 131_073}"  # a title past csv.field_size_limit()
    rewrite(path, lines)
    message = f"{path}:3: field 'title' has 131,073 characters, more than the 131,072"
    assert check_cli.main([str(path.parent)]) == 1
    assert message in "".join(capsys.readouterr())
    with pytest.raises(DataError, match=re.escape(message)):
        build(tiny_dataset)


def test_a_header_only_interaction_file_is_an_error_in_check_and_training(tiny_dataset, capsys):
    path, lines = inter_lines(tiny_dataset)
    rewrite(path, lines[:1])
    message = f"{path}: no rows after the header"
    assert check_cli.main([str(path.parent)]) == 1
    assert message in "".join(capsys.readouterr())
    with pytest.raises(DataError, match=re.escape(message)):
        build(tiny_dataset)


def test_non_numeric_timestamp_names_file_and_line(tiny_dataset):
    path, lines = inter_lines(tiny_dataset)
    user, item, _ = lines[6].split("\t")
    lines[6] = f"{user}\t{item}\tnoon"
    rewrite(path, lines)
    with pytest.raises(DataError, match=re.escape(f"{path}:7: non-numeric timestamp 'noon'")):
        build(tiny_dataset)


def test_item_missing_from_the_item_file_is_counted(tiny_dataset, caplog):
    path, lines = inter_lines(tiny_dataset)
    lines += ["u00001\tGHOST\t1600001010", "u00002\tGHOST\t1600002010", "u00003\tSPOOK\t1"]
    rewrite(path, lines)
    with caplog.at_level(logging.WARNING, logger="recbole_llmemf.data"):
        dataset = build(tiny_dataset)
    assert (
        f"3 interactions name 2 items that tiny.item does not list (first: tiny.inter:"
        f"{len(lines) - 2}: 'GHOST'); RecBole drops these interactions "
        "(filter_inter_by_user_or_item)"
    ) in feature_messages(caplog)
    assert dataset.inter_num == len(lines) - 1 - 3  # what the warning says RecBole does


def test_domain_listed_without_interactions_or_test_cases_is_a_warning(tiny_dataset, caplog):
    path, lines = inter_lines(tiny_dataset)
    movie_only = [lines[0]] + [line for line in lines[1:] if "\tM" in line]
    rewrite(path, movie_only)
    with caplog.at_level(logging.WARNING, logger="recbole_llmemf.data"):
        build(tiny_dataset)
    assert "domain Book: 18 items listed but no interaction uses them" in feature_messages(caplog)

    # Book interactions, but no user's last one: no Book results would be reported
    rows = [line.split("\t") for line in lines[1:]]  # each user's rows in time order
    last_movie = {user: i for i, (user, item, _) in enumerate(rows) if item.startswith("M")}
    kept = ["\t".join(row) for i, row in enumerate(rows) if i <= last_movie.get(row[0], -1)]
    assert any("\tB" in line for line in kept)
    rewrite(path, [lines[0]] + kept)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recbole_llmemf.data"):
        build(tiny_dataset)
    assert (
        "domain Book: no test case has a Book target; no Book results will be reported"
    ) in feature_messages(caplog)


def split_data() -> CrossDomainData:
    """Two domains, four users, each with a test or valid case (the split layout)."""
    items = [Item("A000000001", "X"), Item("A000000002", "X"), Item("B000000001", "Y"),
             Item("B000000002", "Y")]  # fmt: skip
    a1, a2, b1, b2 = (item.token for item in items)
    interactions = [
        ("u1", a1, 1.0), ("u1", b1, 2.0), ("u1", a2, 3.0),
        ("u2", b1, 1.0), ("u2", a1, 2.0), ("u2", b2, 5.0),
        ("u3", a2, 1.0), ("u3", b2, 2.0), ("u3", b1, 3.0),
        ("u4", b2, 1.0), ("u4", a1, 2.0),
    ]  # fmt: skip
    cases = {
        "train": [Case("u1", (a1,), b1, 2.0), Case("u1", (a1, b1), a2, 3.0),
                  Case("u2", (b1,), a1, 2.0), Case("u3", (a2,), b2, 2.0)],
        "valid": [Case("u2", (b1, a1), b2, 5.0)],
        "test": [Case("u3", (a2, b2), b1, 3.0), Case("u4", (b2,), a1, 2.0)],
    }  # fmt: skip
    return CrossDomainData("split", ("X", "Y"), items, interactions, cases, max_len=2)


def test_split_layout_is_checked_on_loading(tmp_path, tiny_dataset, caplog):
    data = split_data()
    folder = dataset_files.write_dataset(
        data, tmp_path / "data", "test", {}, dataset_files.compute_stats(data)
    )
    config = {**tiny_dataset.config, "data_path": str(tmp_path / "data")}
    dataset = create_dataset(Config(model="SASRec", dataset="split", config_dict=config))
    assert dataset.inter_num == 7  # train + valid + test cases
    # text vectors for A000000001 only: the test targets are B000000001 and A000000001
    (folder / "split.itememb_txt").write_text("item_id:token\ttxt_emb:float_seq\nA000000001\t1 0\n")
    llmemf = {**config, "use_image": False, "use_text": True}
    with caplog.at_level(logging.INFO, logger="recbole_llmemf.data"):
        create_dataset(Config(model="LLMEMF", dataset="split", config_dict=llmemf))
    assert (
        "text vectors (split.itememb_txt): 3 of 4 items and 1 of 2 test targets have none (masked)"
    ) in feature_messages(caplog)
    lines = (folder / "split.test.inter").read_text().splitlines()
    lines[2] = lines[2].replace("B000000002\tA000000001", "B000000002\tA000000009")
    (folder / "split.test.inter").write_text("\n".join(lines) + "\n")
    lines = (folder / "split.valid.inter").read_text().splitlines()
    lines[1] = lines[1].replace("B000000001 ", "Z000000001 ")
    (folder / "split.valid.inter").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"history items are not listed in split\.item.*"
                       r"split\.valid\.inter:2: 'Z000000001'"):  # fmt: skip
        create_dataset(Config(model="SASRec", dataset="split", config_dict=config))


# ---------------------------------------------------------------------------------------------
# llmemf-data check on the demo layout, with feature files


def demo_folder(tmp_path) -> Path:
    return generate(SyntheticSpec(name="demo", n_users=60, items_per_group=6, n_groups=3,
                                  feature_dim=8), tmp_path)  # fmt: skip


def test_check_reads_the_demo_layout_and_its_feature_files(tmp_path, capsys):
    folder = demo_folder(tmp_path)
    assert data_cli.main(["check", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "36 items in Movie, Book" in out and "demo.inter, split by RecBole" in out
    items = {
        line.split("\t")[0]: line.split("\t")[1]
        for line in (folder / "demo.item").read_text().splitlines()[1:]
    }
    last: dict[str, tuple[float, str]] = {}
    for line in (folder / "demo.inter").read_text().splitlines()[1:]:
        user, item, time = line.split("\t")
        last[user] = max(last.get(user, (float(time), item)), (float(time), item))
    for suffix in ("itememb_img", "itememb_txt", "itememb_txtraw"):
        have = {
            line.split("\t")[0] for line in (folder / f"demo.{suffix}").read_text().splitlines()[1:]
        }
        per_domain = [
            f"{d} {sum(t in have for t, dd in items.items() if dd == d)} of 18"
            for d in ("Movie", "Book")
        ]
        without = sum(item not in have for _, item in last.values())
        assert (
            f"demo.{suffix}: 8-d vectors for {len(have)} of 36 items; {per_domain[0]} ("
        ) in out and f"; {without} of 60 test targets have none" in out
        assert per_domain[1] in out
    assert "all checks passed" in out
    assert not (folder / "demo.itememb_img.npy").exists(), "a check writes nothing"


@pytest.mark.parametrize(
    "token, values, message",
    [
        ("first", "0.1 " * 8, "already has a vector on line 2"),
        ("NOPE", "0.1 " * 8, "is not an item of the dataset's .item file"),
        ("B02005", "0.1 0.2", "has 2 values, expected 8 like the first row"),
        ("B02005", "nan " * 8, "has a NaN or infinite value"),
    ],
)
def test_check_finds_bad_feature_rows(tmp_path, capsys, token, values, message):
    folder = demo_folder(tmp_path)
    path = folder / "demo.itememb_txt"
    lines = [line for line in path.read_text().splitlines() if not line.startswith("B02005")]
    token = lines[1].split("\t")[0] if token == "first" else token
    path.write_text("\n".join(lines + [f"{token}\t{values.strip()}"]) + "\n")
    assert check_cli.main([str(folder)]) == 1
    expected = f"ERROR: {path}:{len(lines) + 1}: item '{token}' {message}"
    assert expected in capsys.readouterr().out


def test_check_wants_the_feature_files_the_yaml_turns_on(tmp_path, capsys):
    folder = demo_folder(tmp_path)
    (folder / "demo.itememb_img").unlink()
    assert check_cli.main([str(folder)]) == 1
    assert (
        "demo.itememb_img: feature file not found, but use_image is on" in capsys.readouterr().out
    )
    with open(folder / "demo.yaml", "a") as file:
        file.write("use_image: False\n")
    assert check_cli.main([str(folder)]) == 0


def test_check_names_file_and_line_of_a_demo_inter_problem(tmp_path, capsys):
    folder = demo_folder(tmp_path)
    lines = (folder / "demo.inter").read_text().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\tNaN"
    (folder / "demo.inter").write_text("\n".join(lines) + "\n")
    assert check_cli.main([str(folder)]) == 1
    err = capsys.readouterr().err
    assert err == f"{folder / 'demo.inter'}:4: timestamp 'NaN' reads as missing in pandas\n"


# ---------------------------------------------------------------------------------------------
# Console commands: the message, exit status 1, no traceback


def broken_tiny(tiny_dataset) -> str:
    path, lines = inter_lines(tiny_dataset)
    lines[2] = lines[2].split("\t")[0]
    rewrite(path, lines)
    return f"{path}:3: expected 3 fields, got 1 (header: user_id, item_id, timestamp)\n"


def test_run_recbole_prints_data_errors_without_traceback(tiny_dataset, capsys):
    expected = broken_tiny(tiny_dataset)
    argv = ["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_dataset.data_path}"]
    assert run_recbole_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.endswith(expected) and "Traceback" not in err


def test_bench_stops_on_a_data_error(tiny_dataset, tmp_path, capsys):
    expected = broken_tiny(tiny_dataset)
    argv = ["--dataset=tiny", f"--data-path={tiny_dataset.data_path}", "--models=SASRec,BPR",
            "--epochs=1", f"--out={tmp_path / 'results'}"]  # fmt: skip
    assert bench_cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.endswith(expected) and "Traceback" not in captured.err
    assert "BPR" not in captured.out  # the data is wrong for every model: no second run


def test_demo_prints_data_errors_without_traceback(tmp_path, capsys):
    folder = generate(SyntheticSpec(n_users=30), tmp_path / "dataset")
    lines = (folder / "llmemf_demo.inter").read_text().splitlines()
    lines[1] = lines[1].replace("\t", "\t\t", 1)
    (folder / "llmemf_demo.inter").write_text("\n".join(lines) + "\n")
    argv = ["--data-path", str(tmp_path / "dataset"), "--users", "30", "--device", "cpu"]
    assert demo_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert f"{folder / 'llmemf_demo.inter'}:2: expected 3 fields, got 4" in err
    assert "Traceback" not in err


def test_llmemf_data_prints_data_errors_and_other_errors_still_raise(tmp_path, capsys):
    folder = demo_folder(tmp_path)
    (folder / "demo.item").write_text("item_id:token\tdomain:token\nM00000\n")
    assert data_cli.main(["check", str(folder)]) == 1
    assert capsys.readouterr().err == (
        f"{folder / 'demo.item'}:2: expected 2 fields, got 1 (header: item_id, domain)\n"
    )

    @reports_data_errors
    def main() -> int:
        raise KeyError("a bug of ours keeps its traceback")

    with pytest.raises(KeyError):
        main()
