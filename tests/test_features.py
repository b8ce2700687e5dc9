"""Frozen item vectors: explicit missing mask and a clear error for each kind of bad file."""

from __future__ import annotations

import logging
import os
import re
import time

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset

from recbole_llmemf.data.dataset import load_item_matrix
from recbole_llmemf.data.fileformat.item_vectors import FeatureFileError, read_item_vectors

HEADER = "item_id:token\timg_emb:float_seq\n"


def write(path, body, header=HEADER):
    path.write_text(header + body, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "body, known, message",
    [
        ("a\t1 2 3\nb\t1 2\n", None, r"f\.img:3: item 'b' has 2 values, expected 3"),
        ("a\t1 2 3\nb\t1 nan 3\n", None, r"f\.img:3: item 'b' has a NaN or infinite value"),
        (
            "a\t1 2 3\nb\t1 2 3\na\t4 5 6\n",
            None,
            r"f\.img:4: item 'a' already has a vector on line 2",
        ),
        ("a\t1 2 3\nzz\t1 2 3\n", {"a", "b"}, r"f\.img:3: item 'zz' is not an item of the dataset"),
        ("a\t1 x 3\n", None, r"f\.img:2: item 'a': could not convert"),
        ("a\t\n", None, r"f\.img:2: item 'a' has no values"),
    ],
)
def test_bad_rows_name_file_line_and_item(tmp_path, body, known, message):
    path = write(tmp_path / "f.img", body)
    with pytest.raises(FeatureFileError, match=message):
        read_item_vectors(path, known)


def test_bad_header_and_missing_file(tmp_path):
    with pytest.raises(FeatureFileError, match=r"f\.img:1: header must be"):
        read_item_vectors(write(tmp_path / "f.img", "a\t1 2\n", header="item_id:token\tv:float\n"))
    with pytest.raises(FeatureFileError, match="feature file not found"):
        read_item_vectors(str(tmp_path / "absent.img"))


def test_vectors_are_read_in_file_order(tmp_path):
    vectors = read_item_vectors(write(tmp_path / "f.img", "b\t1 2\na\t3 4.5\n"), {"a", "b"})
    assert vectors.tokens == ["b", "a"]
    assert vectors.matrix.tolist() == [[1.0, 2.0], [3.0, 4.5]]


def build_dataset(tiny_dataset, **config):
    config = Config(
        model="LLMEMF", dataset=tiny_dataset.name, config_dict={**tiny_dataset.config, **config}
    )
    return create_dataset(config)


def test_matrix_aligned_to_recbole_ids_with_missing_mask(tiny_dataset):
    dataset = build_dataset(tiny_dataset)
    matrix, has_image = load_item_matrix(dataset, "image")
    path = tiny_dataset.data_path / "tiny" / "tiny.itememb_img"
    rows = dict(line.rstrip("\n").split("\t") for line in path.read_text().splitlines()[1:])
    assert has_image.sum() == len(rows) and not has_image[0]
    for token in ["M00000", "B02005"] + list(rows)[:5]:
        item_id = dataset.token2id("item_id", token)
        if token in rows:
            expected = torch.tensor([float(v) for v in rows[token].split()])
            torch.testing.assert_close(matrix[item_id], expected)
        else:
            assert not has_image[item_id] and (matrix[item_id] == 0).all()


def test_dataset_load_fails_on_feature_file_of_other_items(tiny_dataset):
    path = tiny_dataset.data_path / "tiny" / "tiny.itememb_txt"
    with path.open("a") as file:
        file.write("NOT_AN_ITEM\t" + " ".join(["0.1"] * 16) + "\n")
    with pytest.raises(FeatureFileError, match=re.escape(f"{path}:") + r"\d+: item 'NOT_AN_ITEM'"):
        build_dataset(tiny_dataset)


def test_missing_feature_file_says_how_to_fix(tiny_dataset):
    (tiny_dataset.data_path / "tiny" / "tiny.itememb_img").unlink()
    with pytest.raises(FeatureFileError, match="tiny.itememb_img: feature file not found"):
        build_dataset(tiny_dataset)
    assert build_dataset(tiny_dataset, use_image=False).item_vectors.keys() == {"text"}


def test_binary_copy_is_written_then_memory_mapped_until_the_text_changes(tmp_path):
    path = write(tmp_path / "f.img", "b\t1 2\na\t3 4.5\n")
    first = read_item_vectors(path)
    assert (tmp_path / "f.img.npy").is_file() and (tmp_path / "f.img.tokens").is_file()
    second = read_item_vectors(path)
    assert isinstance(second.matrix, np.memmap)
    assert second.tokens == first.tokens and second.matrix.tolist() == first.matrix.tolist()
    write(tmp_path / "f.img", "b\t5 6\n")
    os.utime(path, ns=(time.time_ns() + 10**9,) * 2)  # the text is newer than its binary copy
    assert read_item_vectors(path).matrix.tolist() == [[5.0, 6.0]]


def test_binary_copy_alone_is_checked_like_the_text(tmp_path):
    base = str(tmp_path / "f.img")
    np.save(base + ".npy", np.array([[1.0, 2.0], [np.nan, 0.0]], dtype=np.float32))
    (tmp_path / "f.img.tokens").write_text("a\nb\n")
    with pytest.raises(FeatureFileError, match=r"f\.img\.npy: item 'b' has a NaN"):
        read_item_vectors(base)
    (tmp_path / "f.img.tokens").write_text("a\na\n")
    with pytest.raises(FeatureFileError, match=r"f\.img\.tokens:2: item 'a' already on line 1"):
        read_item_vectors(base)
    (tmp_path / "f.img.tokens").write_text("a\nzz\n")
    with pytest.raises(FeatureFileError, match=r"f\.img\.tokens:2: item 'zz' is not an item"):
        read_item_vectors(base, {"a"})


def test_binary_copy_is_keyed_on_content_not_modification_time(tmp_path):
    """``rsync -a``, ``cp -p`` and ``tar x`` give a replaced file an older mtime than its copy."""
    path = write(tmp_path / "f.img", "a\t1 2\nb\t3 4\n")
    read_item_vectors(path)  # writes the binary copy
    past = time.time_ns() - 3600 * 10**9
    write(tmp_path / "f.img", "a\t5 6\nb\t7 8\n")  # same size, other vectors
    os.utime(path, ns=(past, past))
    replaced = read_item_vectors(path)
    assert replaced.matrix.tolist() == [[5.0, 6.0], [7.0, 8.0]]
    write(tmp_path / "f.img", "a\t5 nan\n")  # a NaN and a dropped row, also older
    os.utime(path, ns=(past, past))
    with pytest.raises(FeatureFileError, match=r"f\.img:2: item 'a' has a NaN"):
        read_item_vectors(path)
    # the check's read neither trusts nor writes the copy
    write(tmp_path / "f.img", "a\t9 9\n")
    assert read_item_vectors(path, binary_copy=False).matrix.tolist() == [[9.0, 9.0]]
    assert np.load(tmp_path / "f.img.npy").tolist() == [[5.0, 6.0], [7.0, 8.0]]


def test_dataset_logs_items_and_test_targets_without_vectors(tiny_dataset, caplog):
    """Half the items lose their image vector: the dataset says how many items and test targets
    (each user's last interaction in time, RecBole's leave-one-out split) have none."""
    folder = tiny_dataset.data_path / "tiny"
    lines = (folder / "tiny.itememb_img").read_text().splitlines()
    kept = lines[: 1 + (len(lines) - 1) // 2]
    (folder / "tiny.itememb_img").write_text("\n".join(kept) + "\n")
    have = {line.split("\t")[0] for line in kept[1:]}
    items = [line.split("\t")[0] for line in (folder / "tiny.item").read_text().splitlines()[1:]]
    last: dict[str, tuple[float, str]] = {}
    for line in (folder / "tiny.inter").read_text().splitlines()[1:]:
        user, item, timestamp = line.split("\t")
        last[user] = max(last.get(user, (float(timestamp), item)), (float(timestamp), item))
    no_item = sum(token not in have for token in items)
    no_target = sum(item not in have for _, item in last.values())
    assert no_item >= len(items) // 2 and 0 < no_target < len(last)
    with caplog.at_level(logging.INFO, logger="recbole_llmemf.data"):
        build_dataset(tiny_dataset)
    messages = {r.getMessage(): r.levelname for r in caplog.records}
    image = (
        f"image vectors (tiny.itememb_img): {no_item} of {len(items)} items and {no_target} of "
        f"{len(last)} test targets have none (masked)"
    )
    assert messages[image] == "WARNING"  # most of a modality missing
    text = [m for m in messages if m.startswith("text vectors (tiny.itememb_txt)")]
    assert len(text) == 1 and messages[text[0]] == "INFO"  # a few missing, by design
