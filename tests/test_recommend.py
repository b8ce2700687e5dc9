"""llmemf-recommend on the tiny dataset, checked against the raw atomic files."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from recbole.quick_start import run_recbole

from llmemf_cli import recommend as recommend_cli
from recbole_llmemf.quick_start import recommend


def train(model: str, tiny_dataset) -> str:
    run_recbole(model=model, dataset="tiny", config_dict=tiny_dataset.config, saved=True)
    (checkpoint,) = (tiny_dataset.data_path.parent / "saved").glob(f"{model}-*.pth")
    return str(checkpoint)


def raw_data(tiny_dataset):
    """Each user's items (in time order) and each item's domain, read from the atomic files."""
    folder = tiny_dataset.data_path / "tiny"
    with open(folder / "tiny.item", encoding="utf-8") as file:
        domain = {row[0]: row[1] for row in list(csv.reader(file, delimiter="\t"))[1:]}
    with open(folder / "tiny.inter", encoding="utf-8") as file:
        rows = sorted(list(csv.reader(file, delimiter="\t"))[1:], key=lambda r: float(r[2]))
    history = defaultdict(list)
    for user, item, _ in rows:
        history[user].append(item)
    return history, domain


def read_recommendations(path: Path) -> dict[str, list[tuple[int, str, float]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "user_id\trank\titem_id\tscore"
    by_user = defaultdict(list)
    for line in lines[1:]:
        user, rank, item, score = line.split("\t")
        by_user[user].append((int(rank), item, float(score)))
    return by_user


def test_next_domain_without_history_sorted_and_chunk_independent(tiny_dataset, tmp_path):
    checkpoint = train("LLMEMF", tiny_dataset)
    history, domain = raw_data(tiny_dataset)
    chunked, whole = tmp_path / "chunked.tsv", tmp_path / "whole.tsv"
    for out, chunk in ((chunked, 7), (whole, 1000)):
        argv = [checkpoint, "--out", str(out), "-k", "5", "--chunk-users", str(chunk)]
        assert recommend_cli.main([*argv, "--no-progress"]) == 0
    recommendations = read_recommendations(chunked)
    # the same lists; a batch of another size may round a score's last printed digit (of 6
    # significant ones) differently
    whole_recommendations = read_recommendations(whole)
    assert recommendations.keys() == whole_recommendations.keys()
    for user, rows in recommendations.items():
        assert [r[:2] for r in rows] == [r[:2] for r in whole_recommendations[user]]
        assert [r[2] for r in rows] == pytest.approx(
            [r[2] for r in whole_recommendations[user]], rel=1e-5, abs=2e-5
        )
    assert set(recommendations) == set(history)
    for user, rows in recommendations.items():
        # 18 items per domain, at most 9 in a history: always 5 candidates
        assert [rank for rank, _, _ in rows] == [1, 2, 3, 4, 5]
        scores = [score for _, _, score in rows]
        assert scores == sorted(scores, reverse=True)
        items = [item for _, item, _ in rows]
        assert not set(items) & set(history[user]), f"{user} is offered an item of their history"
        next_domain = domain[history[user][-1]]
        assert {domain[item] for item in items} == {next_domain}


def test_chosen_domain_for_a_recbole_model(tiny_dataset, tmp_path, capsys):
    checkpoint = train("SASRec", tiny_dataset)
    history, domain = raw_data(tiny_dataset)
    out = tmp_path / "book.tsv"
    argv = [checkpoint, "--out", str(out), "-k", "18", "--domain", "Book", "--no-progress"]
    assert recommend_cli.main(argv) == 0
    recommendations = read_recommendations(out)
    for user, rows in recommendations.items():
        items = {item for _, item, _ in rows}
        own_books = {item for item in history[user] if domain[item] == "Book"}
        # every Book the user has not had, and nothing else
        assert items == {i for i, d in domain.items() if d == "Book"} - own_books

    assert recommend_cli.main([checkpoint, "--out", str(out), "--domain", "Music"]) == 2
    assert "not a domain of the dataset (Movie, Book)" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["-k", "0"], ["--chunk-users", "0"]])
def test_bad_sizes_are_refused(bad, capsys):
    assert recommend_cli.main(["model.pth", *bad]) == 2
    assert "must be positive" in capsys.readouterr().err


def fake_dataset(**fields) -> SimpleNamespace:
    inter = {name: torch.tensor(values) for name, values in fields.items()}
    return SimpleNamespace(
        inter_feat=inter, uid_field="user_id", iid_field="item_id", time_field="timestamp"
    )


def test_histories_from_split_files_take_each_users_longest_case():
    # C2DSR / amazon split files: one row per case, history list (0-padded) then target
    dataset = fake_dataset(
        user_id=[2, 1, 1],
        item_id_list=[[9, 0, 0], [5, 6, 7], [5, 6, 0]],
        item_id=[3, 8, 7],
    )
    histories = recommend.user_histories(dataset, max_length=3, list_suffix="_list")
    assert histories.users.tolist() == [1, 2]
    assert histories.sequence.tolist() == [[6, 7, 8], [9, 3, 0]]
    assert histories.length.tolist() == [3, 2]
    items = [
        histories.items[a:b].tolist() for a, b in zip(histories.offsets, histories.offsets[1:])
    ]
    assert items == [[5, 6, 7, 8], [3, 9]]


def test_histories_from_interactions_follow_time():
    dataset = fake_dataset(
        user_id=[1, 2, 1, 1], item_id=[4, 9, 5, 6], timestamp=[3.0, 1.0, 1.0, 2.0]
    )
    histories = recommend.user_histories(dataset, max_length=2, list_suffix="_list")
    assert histories.sequence.tolist() == [[6, 4], [9, 0]]  # user 1: 5, 6, 4 by time; last 2
    assert histories.length.tolist() == [2, 1]
