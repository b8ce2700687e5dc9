"""``--shard K/N`` then ``--merge`` for llmemf-data enrich and features: equal to one run, byte for
byte; each shard resumable; an incomplete merge refused."""

from __future__ import annotations

import argparse

import pytest
from test_enrich import FakeBackend, write_dataset
from test_features_tool import feature_args, image_server, write_shop  # noqa: F401

from llmemf_cli.data import enrich as enrich_cli
from llmemf_cli.data import features as features_cli
from llmemf_cli.options import parse_shard
from recbole_llmemf.dataset_tools import _shards, enrich

THINGS = [(f"I{i:02d}", "Food" if i % 2 else "Kitchen", f"Thing number {i}") for i in range(11)]
THINGS.append(("I11", "Food", ""))  # no title: not sent, in no shard


def test_shard_option_parsing():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "-1/3", "1", "a/b"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_shard(bad)
    assert _shards.take(list(range(7)), (1, 3)) == [1, 4]


def run_enrich(monkeypatch, folder, backend, *extra) -> int:
    monkeypatch.setattr(enrich, "make_backend", lambda args: backend)
    return enrich_cli.main([str(folder), "--backend", "local", "--no-progress", *extra])


def test_enrich_three_shards_merged_equal_one_run(tmp_path, monkeypatch, capsys):
    whole = write_dataset(tmp_path / "whole", items=THINGS)
    assert run_enrich(monkeypatch, whole, FakeBackend()) == 0
    sharded = write_dataset(tmp_path / "sharded", items=THINGS)

    killed = FakeBackend(fail_after=2)  # shard 1 is killed after 2 of its 4 items
    with pytest.raises(KeyboardInterrupt):
        run_enrich(monkeypatch, sharded, killed, "--shard", "1/3")
    seen = {}
    for k in range(3):
        backend = FakeBackend()
        assert run_enrich(monkeypatch, sharded, backend, "--shard", f"{k}/3") == 0
        seen[k] = backend.seen
    # 11 titled items: 4, 4 and 3; shard 1 resumed with its last 2
    assert [len(seen[k]) for k in range(3)] == [4, 2, 3]
    assert not (sharded / "shop.enriched.tsv").exists(), "a shard writes no final output"

    # the merge generates nothing (fail_after=0 would raise) and checks every item is answered
    (sharded / "shop.enrich_cache.shard-2-of-3.jsonl").rename(tmp_path / "held-back.jsonl")
    assert run_enrich(monkeypatch, sharded, FakeBackend(fail_after=0), "--merge") == 2
    assert "3 of 11 items have no answer" in capsys.readouterr().err
    assert not (sharded / "shop.enriched.tsv").exists()
    (tmp_path / "held-back.jsonl").rename(sharded / "shop.enrich_cache.shard-2-of-3.jsonl")
    assert run_enrich(monkeypatch, sharded, FakeBackend(fail_after=0), "--merge") == 0
    assert (sharded / "shop.enriched.tsv").read_bytes() == (
        whole / "shop.enriched.tsv"
    ).read_bytes()


def test_features_three_shards_merged_equal_one_run(tmp_path, tiny_clip, image_server):  # noqa: F811
    whole = write_shop(tmp_path / "whole", image_server.url)
    assert features_cli.main(feature_args(whole, tiny_clip)) == 0
    sharded = write_shop(tmp_path / "sharded", image_server.url)
    # 9 items in shards of 4 items: one work shard per process
    for k in range(3):
        assert features_cli.main(feature_args(sharded, tiny_clip, "--shard", f"{k}/3")) == 0
        done = sorted(p.name[:11] for p in (sharded / ".llmemf_features").glob("*/shard_*.npz"))
        assert done == sorted([f"shard_{s:05d}" for s in range(k + 1)] * 3)
    assert not list(sharded.glob("shop.itememb_*")), "a shard writes no final output"
    assert features_cli.main(feature_args(sharded, tiny_clip, "--merge")) == 0
    for suffix in ("itememb_img", "itememb_txt", "itememb_txtraw", "feature_coverage.tsv"):
        assert (sharded / f"shop.{suffix}").read_bytes() == (whole / f"shop.{suffix}").read_bytes()


def test_features_merge_refuses_missing_shards(tmp_path, tiny_clip, image_server, capsys):  # noqa: F811
    folder = write_shop(tmp_path, image_server.url)
    assert features_cli.main(feature_args(folder, tiny_clip, "--shard", "0/3")) == 0
    assert features_cli.main(feature_args(folder, tiny_clip, "--merge")) == 2
    assert "2 of 3 shards are missing" in capsys.readouterr().err
    assert not list(folder.glob("shop.itememb_*"))
