"""Leakage and sanity checks: each on a small dataset with one defect; the folder command."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from llmemf_cli import data as data_cli
from llmemf_cli.data import amazon as amazon_cli
from llmemf_cli.data import c2dsr as c2dsr_cli
from llmemf_cli.data import check as check_cli
from recbole_llmemf.data.fileformat.checks import check_data
from recbole_llmemf.data.fileformat.reader import read_folder
from recbole_llmemf.data.fileformat.records import Case, CrossDomainData, Item
from recbole_llmemf.dataset_tools import dataset_files

ITEMS = [Item("A000000001", "X", "one"), Item("A000000002", "X"), Item("B000000001", "Y"),
         Item("B000000002", "Y", "four")]  # fmt: skip
A1, A2, B1, B2 = (item.token for item in ITEMS)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])


def good_data() -> CrossDomainData:
    """u1 (train only), u2 (valid), u3 and u4 (test, one per domain); each user's interactions in
    time order."""
    interactions = [
        ("u1", A1, 1.0), ("u1", B1, 2.0), ("u1", A2, 3.0),
        ("u2", B1, 1.0), ("u2", A1, 1.0), ("u2", B2, 5.0),
        ("u3", A2, 1.0), ("u3", B2, 2.0), ("u3", B1, 3.0),
        ("u4", B2, 1.0), ("u4", A1, 2.0),
    ]  # fmt: skip
    cases = {
        "train": [Case("u1", (A1,), B1, 2.0), Case("u1", (A1, B1), A2, 3.0),
                  Case("u2", (B1,), A1, 1.0), Case("u3", (A2,), B2, 2.0)],
        "valid": [Case("u2", (B1, A1), B2, 5.0)],
        "test": [Case("u3", (A2, B2), B1, 3.0), Case("u4", (B2,), A1, 2.0)],
    }  # fmt: skip
    return CrossDomainData("tiny", ("X", "Y"), list(ITEMS), interactions, cases, max_len=2)


def with_cases(split: str, cases: list[Case]) -> CrossDomainData:
    data = good_data()
    data.cases[split] = cases
    return data


def test_good_data_passes():
    report = check_data(good_data())
    assert report.ok and not report.warnings, report.format()
    assert report.format() == "all checks passed"


def test_leakage_test_target_in_training_input():
    data = good_data()
    data.cases["train"].append(Case("u3", (A2, B1), B2, 2.0))  # B1 is u3's test target
    errors = check_data(data).errors  # the same row also breaks the time order
    assert (
        "1 valid/test targets occur in the same user's training input (leakage): "
        f"user u3 test target {B1}"
    ) in errors


def test_leakage_test_target_as_training_target():
    data = good_data()
    data.cases["train"].append(Case("u3", (A2, B2), B1, 3.0))
    assert any("(leakage): user u3 test target" in error for error in check_data(data).errors)


def test_history_out_of_time_order():
    data = with_cases("valid", [Case("u2", (B2, A1), B1, 1.0)])  # B2 (t=5) before a target at t=1
    errors = check_data(data).errors
    assert "1 histories are not the user's earlier interactions in time order: user u2 valid " \
           f"target {B1}" in errors  # fmt: skip


def test_history_item_the_user_never_had():
    data = with_cases("test", [Case("u3", (A1, B2), B1, 3.0)])
    assert any("not the user's earlier interactions" in error for error in check_data(data).errors)


def test_target_not_an_interaction_at_that_time():
    data = with_cases("test", [Case("u3", (A2, B2), B1, 4.0)])
    assert any(
        "case targets are not interactions of their user at that time: user u3 test target" in error
        for error in check_data(data).errors
    )


def test_training_on_the_future_of_an_evaluated_user():
    data = good_data()
    data.interactions.append(("u2", A2, 9.0))
    data.cases["train"].append(Case("u2", (B1, A1), A2, 9.0))
    assert any(
        "training cases are later than the same user's valid/test target: user u2 trains on "
        f"{A2} at 9 > 5" in error
        for error in check_data(data).errors
    )


def test_item_without_domain_and_unknown_domain():
    data = good_data()
    data.items[1] = Item(A2, "")
    data.items[2] = Item(B1, "Z")
    errors = check_data(data).errors
    assert f"1 items have no domain: {A2}" in errors
    assert f"1 items have a domain other than X, Y: {B1} (Z)" in errors


def test_domains_overlap_and_duplicates():
    data = good_data()
    data.items += [Item(A1, "Y"), Item(B2, "Y")]
    errors = check_data(data).errors
    assert f"1 items belong to two domains (domains overlap): {A1} in X and Y" in errors
    assert f"1 items are listed twice: {B2}" in errors


def test_ids_must_be_asins_and_listed():
    data = good_data()
    data.items[0] = Item("movie-1", "X")
    report = check_data(data)
    assert "1 item ids are not ASINs (10 upper-case letters or digits): movie-1" in report.errors
    assert any(e.startswith("1 history items are not listed in") for e in report.errors)
    assert any("items that tiny.item does not list" in w for w in report.warnings)


def test_check_and_training_agree_on_unlisted_items(tiny_dataset, capsys):
    """An interaction with an unlisted item: a warning in both (RecBole drops the row); the
    check passes as training does."""
    folder = tiny_dataset.data_path / "tiny"
    with open(folder / "tiny.inter", "a") as file:
        file.write("u00001\tNOTLISTED1\t1600000999\n")
    assert check_cli.main([str(folder)]) == 0
    assert "items that tiny.item does not list" in capsys.readouterr().out


def test_shapes_recbole_relies_on():
    data = good_data()
    data.cases["train"].append(Case("u1", (), A1, 1.0))
    data.cases["valid"].append(Case("u1", (A1, B1, A2), B2, 3.0))
    data.cases["test"] = []
    errors = check_data(data).errors
    assert "1 cases have an empty history: user u1 (train)" in errors
    assert "1 histories are longer than max_len 2: user u1 (valid, 3)" in errors
    assert "the test split is empty" in errors


def test_user_in_valid_and_test_is_a_warning():
    data = good_data()
    data.cases["test"].append(Case("u2", (B1, A1), B2, 5.0))
    report = check_data(data)
    assert report.ok and report.warnings == ["1 users have both a valid and a test case: u2"]


def test_examples_are_capped():
    data = good_data()
    data.items += [Item(f"bad{k}", "X") for k in range(5)]
    message = next(e for e in check_data(data).errors if "not ASINs" in e)
    assert message.startswith("5 item ids are not ASINs") and message.endswith("(and 2 more)")


# ---------------------------------------------------------------------------------------------
# Folders: written by the tools' writer, read back, checked by `llmemf-data check`


def write(data: CrossDomainData, tmp_path):
    return dataset_files.write_dataset(
        data, tmp_path / "out", "test", {}, dataset_files.compute_stats(data)
    )


def test_folder_round_trip(tmp_path):
    data = good_data()
    folder = write(data, tmp_path)
    again = read_folder(folder)
    assert again.items == data.items and again.cases == data.cases
    assert again.interactions == data.interactions
    assert (again.name, again.domains, again.max_len) == ("tiny", ("X", "Y"), 2)


def test_check_command(tmp_path, capsys):
    folder = write(good_data(), tmp_path)
    assert check_cli.main([str(folder)]) == 0
    assert "all checks passed" in capsys.readouterr().out
    assert data_cli.main(["check", str(folder)]) == 0  # through the llmemf-data dispatcher
    with open(folder / "tiny.train.inter", "a", encoding="utf-8") as file:
        file.write(f"u3\t{A2} {B1}\t{B2}\t2\n")
    assert check_cli.main([str(folder)]) == 1
    assert "ERROR: 1 valid/test targets occur in the same user's training input" in (
        capsys.readouterr().out
    )


def test_check_command_names_file_and_line(tmp_path, capsys):
    folder = write(good_data(), tmp_path)
    with open(folder / "tiny.inter", "a", encoding="utf-8") as file:
        file.write("u1\tA000000001\n")
    assert check_cli.main([str(folder)]) == 1
    assert f"{folder / 'tiny.inter'}:13: expected 3 fields, got 2" in capsys.readouterr().err
    with open(folder / "tiny.inter", "w", encoding="utf-8") as file:
        file.write("user_id:token\titem_id:token\ttimestamp:float\nu1\tA000000001\tnoon\n")
    assert check_cli.main([str(folder)]) == 1
    assert f"{folder / 'tiny.inter'}:2: non-numeric timestamp 'noon'" in capsys.readouterr().err


def test_check_command_missing_folder(tmp_path, capsys):
    assert check_cli.main([str(tmp_path / "nothing")]) == 1
    assert "file not found" in capsys.readouterr().err


def test_writer_adds_optional_columns_only_when_used(tmp_path):
    data = good_data()
    data.items[0] = dataclasses.replace(data.items[0], image_url="http://x/1.jpg")
    header = (write(data, tmp_path) / "tiny.item").read_text().splitlines()[0]
    assert header == "item_id:token\tdomain:token\ttitle:token_seq\timage_url:token"


@pytest.mark.parametrize("module", [amazon_cli, c2dsr_cli, check_cli])
def test_help(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    command = module.__name__.rsplit(".", 1)[-1]
    assert f"usage: llmemf-data {command}" in capsys.readouterr().out


def test_check_command_on_split_files_alone(tmp_path, capsys):
    """RecBole reads only the split files: without <name>.inter or times the rest is checked."""
    folder = write(good_data(), tmp_path)
    (folder / "tiny.inter").unlink()
    for split in ("train", "valid", "test"):
        path = folder / f"tiny.{split}.inter"
        lines = [line.rsplit("\t", 1)[0] for line in path.read_text().splitlines()]
        path.write_text("\n".join(lines) + "\n")  # no timestamp column
    assert check_cli.main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "cases: 4 train, 1 valid, 2 test" in out
    assert "warning: time order not checked" in out
    with open(folder / "tiny.train.inter", "a", encoding="utf-8") as file:
        file.write(f"u2\t{B1}\t{B2}\n")  # u2's valid target as a training target
    assert check_cli.main([str(folder)]) == 1
    assert "(leakage): user u2 valid target" in capsys.readouterr().out
