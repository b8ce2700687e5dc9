"""General models train on every interaction the sequential models see as history or target."""

from __future__ import annotations

import pytest
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from test_c2dsr import EXPECTED, run, write_split


def general_train_pairs(model: str, data_path, **extra) -> list[tuple[str, str]]:
    config = Config(
        model=model,
        dataset="fk",
        config_dict={"data_path": str(data_path), "use_gpu": False, "state": "WARNING", **extra},
    )
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    train = train_data._dataset
    users = train.id2token(train.uid_field, train.inter_feat[train.uid_field].numpy())
    items = train.id2token(train.iid_field, train.inter_feat[train.iid_field].numpy())
    return sorted(zip(users.tolist(), items.tolist()))


def rows(name: str) -> list[list[str]]:
    return [line.split("\t") for line in EXPECTED[name].splitlines()[1:]]


@pytest.mark.parametrize("model", ["BPR", "ItemKNN"])
def test_general_models_train_on_every_history_and_train_target(tmp_path, model):
    assert run(write_split(tmp_path / "food_kitchen")) == 0  # histories cut to 2 items
    data_path = tmp_path / "out"
    eval_targets = {
        (user, target)
        for name in ("fk.valid.inter", "fk.test.inter")
        for user, _, target, _ in rows(name)
    }
    every = {(user, item) for user, item, _ in rows("fk.inter")}
    assert len(every) == 11 and len(eval_targets) == 3

    pairs = general_train_pairs(model, data_path)
    assert len(pairs) == len(set(pairs)) == 8
    assert set(pairs) == every - eval_targets
    # the first item of each user: a history item of every row, the target of none
    assert {("REVIEWER0", "A000000000"), ("REVIEWER1", "A000000002")} <= set(pairs)

    recbole = general_train_pairs(model, data_path, domain_field=None, protocol=None)
    assert recbole == sorted((user, target) for user, _, target, _ in rows("fk.train.inter"))
