"""llmemf-data enrich --views (DMESR's three-way prompting): each view's items, prompt, output and
cache entries; resume and shards per view; the image inline in the OpenAI request (local stub
server); a tiny random vision-language model loaded through from_pretrained; the default run as
before views existed; and llmemf-data features --enriched-views."""

from __future__ import annotations

import argparse
import base64
import http.server
import io
import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import byte_alphabet, send_json
from PIL import Image
from test_enrich import FakeBackend, write_dataset

from llmemf_cli.data import enrich as enrich_cli
from llmemf_cli.data import features as features_cli
from recbole_llmemf.data.fileformat.item_vectors import read_item_vectors
from recbole_llmemf.dataset_tools import enrich, enrich_views
from recbole_llmemf.dataset_tools.enrich_cache import EnrichmentCache, cache_key
from recbole_llmemf.dataset_tools.enriched_file import read_enriched
from recbole_llmemf.dataset_tools.item_file import ItemRecord
from recbole_llmemf.dataset_tools.llm_backends import Backend
from recbole_llmemf.dataset_tools.prompts import DEFAULT_TEMPLATE, VIEW_TEMPLATES, template_hash

SECRET = "sk-test-views-0123456789-DO-NOT-LEAK"
SIZES = {"F1": (24, 16), "F2": (10, 12), "K3": (14, 14)}  # each item's picture, told by its size
ROWS = [
    ("F1", "Food", "Green Tea", "img/tea.jpg"),
    ("F2", "Food", "", "img/untitled.png"),  # an image, no title: the image view only
    ("F3", "Food", "Dark Chocolate", ""),  # a title, no image: the text view only
    ("K1", "Kitchen", "Skillet", "img/broken.jpg"),  # an image that does not load
    ("K2", "Kitchen", "", ""),  # neither: no view
    ("K3", "Kitchen", "Chef Knife", ""),  # its image in --image-dir
]
IMAGE_ITEMS, BOTH_ITEMS, TEXT_ITEMS = ["F1", "F2", "K3"], ["F1", "K3"], ["F1", "F3", "K1", "K3"]


def write_shop(root: Path) -> Path:
    """The six items of ROWS with their pictures: a JPEG, a PNG, a broken file, one in
    ``<root>/images``."""
    folder = root / "shop"
    (folder / "img").mkdir(parents=True)
    (root / "images").mkdir()
    Image.new("RGB", SIZES["F1"], (200, 30, 30)).save(folder / "img" / "tea.jpg")
    Image.new("RGB", SIZES["F2"], (30, 200, 30)).save(folder / "img" / "untitled.png")
    (folder / "img" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    Image.new("RGB", SIZES["K3"], (30, 30, 200)).save(root / "images" / "K3.jpg")
    lines = ["item_id:token\tdomain:token\ttitle:token_seq\timage_url:token"]
    lines += ["\t".join(row) for row in ROWS]
    (folder / "shop.item").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


class SeeingBackend(Backend):
    """Answers from the prompt and the picture's size; raises after ``fail_after`` prompts, like
    a run killed mid-way."""

    label = "fake:vlm"
    sees_images = True
    workers = 1

    def __init__(self, fail_after: int | None = None, batch_size: int = 1):
        self.fail_after = fail_after
        self.batch_size = batch_size
        self.calls: list[tuple[str, tuple[int, int] | None]] = []

    def generate(self, prompts, images=None):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("killed")
        sizes = [image.size for image in images] if images is not None else [None] * len(prompts)
        self.calls += list(zip(prompts, sizes))
        return [f"picture {size}: {prompt[:60]}" for prompt, size in zip(prompts, sizes)]


def run_enrich(monkeypatch, folder: Path, backend: Backend, *extra: str) -> int:
    monkeypatch.setattr(enrich, "make_backend", lambda args: backend)
    image_dir = str(folder.parent / "images")
    return enrich_cli.main([str(folder), "--backend", "local", "--image-dir", image_dir,
                            "--no-progress", *extra])  # fmt: skip


def texts_of(folder: Path, view: str) -> dict[str, str]:
    return read_enriched(folder / f"shop.enriched_{view}.tsv")[0]


# ----------------------------------------------------------------------------- the views


def test_help_and_view_names(capsys):
    with pytest.raises(SystemExit) as exit_info:
        enrich_cli.main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # as one line: argparse wraps the help
    assert "--views VIEWS" in out and "image (described from the picture)" in out
    assert "<dir>/<name>.enriched_<view>.tsv" in out and "--image-dir" in out
    assert enrich_cli.parse_views("both, image,both") == ("both", "image")
    for bad in ("", "image,video", "txt"):
        with pytest.raises(argparse.ArgumentTypeError, match="comma list of image, text, both"):
            enrich_cli.parse_views(bad)
    assert set(enrich_cli.VIEW_NAMES) == set(enrich_views.VIEWS)
    with pytest.raises(SystemExit):
        features_cli.main(["--help"])
    assert "--enriched-views VIEWS" in capsys.readouterr().out


def test_each_view_asks_about_its_own_items(tmp_path, monkeypatch, caplog, capsys):
    folder = write_shop(tmp_path)
    backend = SeeingBackend(batch_size=2)
    caplog.set_level(logging.INFO)
    assert run_enrich(monkeypatch, folder, backend, "--views", "image,text,both") == 0

    assert list(texts_of(folder, "image")) == IMAGE_ITEMS  # K1's image did not load
    assert list(texts_of(folder, "both")) == BOTH_ITEMS
    assert list(texts_of(folder, "text")) == TEXT_ITEMS
    assert not (folder / "shop.enriched.tsv").exists()  # LLM-EMF's enrichment did not run
    meta = read_enriched(folder / "shop.enriched_both.tsv")[1]
    assert meta["view"] == "both" and meta["template_hash"] == template_hash(VIEW_TEMPLATES["both"])

    image_calls = [(p, size) for p, size in backend.calls if size and "title" not in p]
    both_calls = [(p, size) for p, size in backend.calls if size and "title" in p]
    assert sorted(size for _, size in image_calls) == sorted(SIZES.values())  # its own picture
    assert {p for p, _ in image_calls} == {
        VIEW_TEMPLATES["image"].replace("{domain}", domain) for domain in ("Food", "Kitchen")
    }  # the picture alone: no title
    assert sorted(both_calls) == sorted(
        (VIEW_TEMPLATES["both"].replace("{domain}", d).replace("{title}", t), SIZES[item])
        for item, d, t in [("F1", "Food", "Green Tea"), ("K3", "Kitchen", "Chef Knife")]
    )
    assert sum(size is None for _, size in backend.calls) == len(TEXT_ITEMS)  # text: no picture
    assert len(backend.calls) == 3 + 2 + 4  # K1's image views were never asked

    log = caplog.text
    assert "image view: 2 of 6 items skipped (2 without an image)" in log
    assert "both view: 3 of 6 items skipped (2 without an image, 2 without a title)" in log
    assert "text view: 2 of 6 items skipped (2 without a title)" in log
    assert "1 items skipped, their image did not load: 1 unreadable image" in log
    out = capsys.readouterr().out
    assert "-> " + str(folder / "shop.enriched_image.tsv") in out
    assert "0 failed, 1 without a loadable image" in out


def test_a_view_that_needs_images_without_any_is_a_clear_error(tmp_path, monkeypatch, capsys):
    folder = write_dataset(tmp_path)  # no image_url field
    backend = SeeingBackend()
    monkeypatch.setattr(enrich, "make_backend", lambda args: backend)
    assert enrich_cli.main([str(folder), "--backend", "local", "--views", "text,both"]) == 2
    err = capsys.readouterr().err
    assert "--views both shows the LLM each item's image, and no item has one" in err
    assert backend.calls == []  # checked before any view ran, the text view too


@pytest.mark.parametrize(
    "option, message",
    [("--out", "--out names one output file"), ("--template-file", "--template-file holds one")],
)
def test_options_naming_one_file_take_one_view(tmp_path, monkeypatch, capsys, option, message):
    folder = write_shop(tmp_path)
    (tmp_path / "file.txt").write_text("{title}", encoding="utf-8")
    backend = SeeingBackend()
    args = ["--views", "image,text", option, str(tmp_path / "file.txt")]
    assert run_enrich(monkeypatch, folder, backend, *args) == 2
    assert message in capsys.readouterr().err and backend.calls == []


def test_the_view_is_part_of_the_cache_key(tmp_path, monkeypatch):
    assert len({cache_key("I", "h", "m", view) for view in ("", "image", "text", "both")}) == 4
    folder = write_shop(tmp_path)
    template = tmp_path / "template.txt"  # one prompt for two views: only the view tells them apart
    template.write_text("Describe the {domain} item {title}.", encoding="utf-8")
    text = SeeingBackend()
    assert run_enrich(monkeypatch, folder, text, "--views", "text", "--template-file",
                      str(template)) == 0  # fmt: skip
    both = SeeingBackend()
    assert run_enrich(monkeypatch, folder, both, "--views", "both", "--template-file",
                      str(template)) == 0  # fmt: skip
    assert len(both.calls) == len(BOTH_ITEMS) and all(size for _, size in both.calls)
    paper = SeeingBackend()
    assert run_enrich(monkeypatch, folder, paper) == 0  # LLM-EMF's enrichment: none reused
    assert len(paper.calls) == len(TEXT_ITEMS)

    cache = EnrichmentCache(folder / "shop.enrich_cache.jsonl")  # one file holds every view
    digest = template_hash("Describe the {domain} item {title}.")
    f1_text = cache.get(cache_key("F1", digest, "fake:vlm", "text"))["text"]
    f1_both = cache.get(cache_key("F1", digest, "fake:vlm", "both"))["text"]
    assert f1_text.startswith("picture None") and f1_both.startswith("picture (24, 16)")
    assert cache.get(cache_key("F1", digest, "fake:vlm")) is None
    views = [record.get("view") for record in cache.entries.values()]
    assert sorted(map(str, views)) == sorted(["text"] * 4 + ["both"] * 2 + ["None"] * 4)
    run_again = SeeingBackend(fail_after=0)  # every view again: nothing to ask
    assert run_enrich(monkeypatch, folder, run_again, "--views", "both", "--template-file",
                      str(template)) == 0  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_killed_view_resumes_without_asking_again(tmp_path, monkeypatch, batch_size):
    whole = write_shop(tmp_path / "whole")
    assert run_enrich(monkeypatch, whole, SeeingBackend(batch_size=batch_size), "--views",
                      "image,both") == 0  # fmt: skip

    resumed = write_shop(tmp_path / "resumed")
    killed = SeeingBackend(fail_after=2, batch_size=batch_size)
    with pytest.raises(KeyboardInterrupt):
        run_enrich(monkeypatch, resumed, killed, "--views", "image,both")
    cache_path = resumed / "shop.enrich_cache.jsonl"
    assert len(cache_path.read_text().splitlines()) == len(killed.calls) == 2
    again = SeeingBackend(batch_size=batch_size)
    assert run_enrich(monkeypatch, resumed, again, "--views", "image,both") == 0
    asked_before = {prompt for prompt, _ in killed.calls}
    assert len(again.calls) == 3 + 2 - 2 and not asked_before & {p for p, _ in again.calls}
    for view in ("image", "both"):
        name = f"shop.enriched_{view}.tsv"
        assert (resumed / name).read_bytes() == (whole / name).read_bytes()


def test_shards_per_view_merge_into_one_run(tmp_path, monkeypatch, capsys):
    whole = write_shop(tmp_path / "whole")
    assert run_enrich(monkeypatch, whole, SeeingBackend(), "--views", "image,text") == 0
    sharded = write_shop(tmp_path / "sharded")
    seen = {}
    for k in range(2):
        backend = SeeingBackend()
        assert run_enrich(monkeypatch, sharded, backend, "--views", "image,text", "--shard",
                          f"{k}/2") == 0  # fmt: skip
        seen[k] = backend.calls
    # image: F1 F2 K1 K3 -> F1 K1 | F2 K3 (K1's image does not load); text: F1 F3 K1 K3 -> 2 | 2
    assert [len(seen[k]) for k in range(2)] == [1 + 2, 2 + 2]
    assert (sharded / "shop.enriched_image.shard-1-of-2.tsv").is_file()
    assert not list(sharded.glob("shop.enriched_*t.tsv")), "a shard writes no final output"

    shard_1 = sharded / "shop.enrich_cache.shard-1-of-2.jsonl"
    shard_1.rename(tmp_path / "held-back.jsonl")
    assert run_enrich(monkeypatch, sharded, SeeingBackend(fail_after=0), "--views", "image,text",
                      "--merge") == 2  # fmt: skip
    assert "2 of 4 items have no answer for fake:vlm (image view)" in capsys.readouterr().err
    (tmp_path / "held-back.jsonl").rename(shard_1)
    # K1 has no answer in any shard, and needs none: its image does not load
    assert run_enrich(monkeypatch, sharded, SeeingBackend(fail_after=0), "--views", "image,text",
                      "--merge") == 0  # fmt: skip
    for view in ("image", "text"):
        name = f"shop.enriched_{view}.tsv"
        assert (sharded / name).read_bytes() == (whole / name).read_bytes()


def test_limit_takes_the_same_items_in_every_view_where_it_can():
    items = [ItemRecord(f"I{i}", "Food", f"t{i}" if i % 4 else "", "x.jpg" if i % 3 else "")
             for i in range(40)]  # fmt: skip
    with_image = {item.item_id for item in items if item.image_url}
    chosen = {
        name: enrich_views.view_items(items, view, with_image, 6, seed=3)
        for name, view in enrich_views.VIEWS.items()
    }
    assert all(len(found) == 6 for found in chosen.values())
    assert all(item.image_url for item in chosen["image"] + chosen["both"])
    assert all(item.title for item in chosen["text"] + chosen["both"])
    # one seeded order of all items: what the image and text views both took, both took too
    # (independent samples of each view's items would not share them)
    shared = set(chosen["image"]) & set(chosen["text"])
    assert shared and shared <= set(chosen["both"])
    assert chosen["text"] == enrich_views.view_items(items, enrich_views.VIEWS["text"], set(), 6, 3)


# ----------------------------------------------------------------------------- before views


def test_without_views_files_and_cache_lines_are_as_before(tmp_path, monkeypatch):
    """The default run is LLM-EMF's enrichment as it was: the paper's prompt (its hash pinned: a
    changed prompt would orphan every cache), a cache line written before views existed is
    reused, new lines have the old fields only, the old output file and no view's."""
    assert template_hash(DEFAULT_TEMPLATE) == "7f9cab8c99964307"
    folder = write_dataset(tmp_path)  # F1, F2, K1, K2, K3 titled
    old_line = {"item_id": "F1", "model": "fake:model", "settings": {},
                "template_hash": "7f9cab8c99964307", "text": "cached long ago"}  # fmt: skip
    cache_path = folder / "shop.enrich_cache.jsonl"
    cache_path.write_text(json.dumps(old_line, sort_keys=True) + "\n", encoding="utf-8")
    backend = FakeBackend()
    monkeypatch.setattr(enrich, "make_backend", lambda args: backend)
    assert enrich_cli.main([str(folder), "--backend", "local", "--no-progress"]) == 0

    assert len(backend.seen) == 4 and not any("Green Tea" in p for p in backend.seen)
    assert (folder / "shop.enriched.tsv").read_text(encoding="utf-8") == (
        "item_id:token\tenrichment:token_seq\n"
        "F1\tcached long ago\n"
        "F2\tabout: Rate Limited Chocolate {70%}.\n"
        "K1\tabout: Boom Cast Iron Skillet. Provid\n"
        "K2\tabout: Think Chef Knife. Provide deta\n"
        "K3\tabout: Plain Cutting Board. Provide d\n"
    )
    lines = [json.loads(line) for line in cache_path.read_text().splitlines()]
    assert lines[0] == old_line
    assert all(set(line) == set(old_line) for line in lines) and len(lines) == 5
    assert "view" not in read_enriched(folder / "shop.enriched.tsv")[1]
    assert sorted(p.name for p in folder.glob("shop.enriched*")) == [
        "shop.enriched.tsv",
        "shop.enriched.tsv.json",
    ]


# ----------------------------------------------------------------------------- OpenAI endpoint


class VisionStub:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that records every request body and
    answers with the prompt's first words."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.auth: list[str] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.bodies.append(body)
                stub.auth.append(self.headers.get("Authorization", ""))
                content = body["messages"][0]["content"]
                prompt = content if isinstance(content, str) else content[0]["text"]
                send_json(self, {"choices": [{"message": {"content": f"Seen: {prompt[:50]}"}}]})

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def vision_stub():
    stub = VisionStub()
    yield stub
    stub.close()


def openai_views(folder: Path, url: str, views: str) -> list[str]:
    return [str(folder), "--backend", "openai", "--base-url", url, "--model", "stub-vlm",
            "--views", views, "--image-dir", str(folder.parent / "images"), "--backoff", "0",
            "--workers", "2", "--no-progress"]  # fmt: skip


def test_openai_request_carries_the_image_inline(tmp_path, monkeypatch, vision_stub, capsys):
    folder = write_shop(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert enrich_cli.main(openai_views(folder, vision_stub.url, "image,both,text")) == 0
    assert len(vision_stub.bodies) == 3 + 2 + 4 and set(vision_stub.auth) == {f"Bearer {SECRET}"}

    pictures = []
    for body in vision_stub.bodies:
        assert body["model"] == "stub-vlm" and len(body["messages"]) == 1
        content = body["messages"][0]["content"]
        if isinstance(content, str):  # the text view
            assert "picture" not in content
            continue
        text, image = content
        assert text["type"] == "text" and "picture" in text["text"]
        assert image["type"] == "image_url"
        prefix = "data:image/jpeg;base64,"
        assert image["image_url"]["url"].startswith(prefix)
        picture = Image.open(io.BytesIO(base64.b64decode(image["image_url"]["url"][len(prefix) :])))
        assert picture.format == "JPEG"  # the PNG too
        pictures.append((picture.size, "Green Tea" in text["text"] or "Chef Knife" in text["text"]))
    image_view = sorted(size for size, titled in pictures if not titled)
    both_view = sorted(size for size, titled in pictures if titled)
    assert image_view == sorted(SIZES.values())
    assert both_view == sorted([SIZES["F1"], SIZES["K3"]])
    assert list(texts_of(folder, "both")) == BOTH_ITEMS
    assert texts_of(folder, "both")["F1"].startswith("Seen: The picture shows an item")

    captured = capsys.readouterr()
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()
    assert SECRET not in captured.out + captured.err


# ----------------------------------------------------------------------------- local models


VLM_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for part in "
    "message['content'] %}{% if part['type'] == 'image' %}<image>\n{% else %}{{ part['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """A random LLaVA (a one-layer CLIP vision tower on 16 x 16 pixels, a one-layer Llama) with a
    byte-level tokenizer, an ``<image>`` token and a chat template, saved for from_pretrained."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(byte_alphabet())}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
        pad_token="<|endoftext|>", extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=VLM_TEMPLATE, image_token="<image>",
    )  # fmt: skip
    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", image_size=16, patch_size=8, **small),
        text_config=dict(
            model_type="llama", vocab_size=len(tokenizer), num_key_value_heads=2,
            max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **small,
        ),
        image_token_index=tokenizer.image_token_id,
        vision_feature_select_strategy="default",
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    # random weights could end an answer at once; the test wants a few generated bytes
    model.generation_config.suppress_tokens = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    folder = tmp_path_factory.mktemp("tiny_vlm")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def local_args(folder: Path, model: Path, *extra: str) -> list[str]:
    return [str(folder), "--backend", "local", "--model", str(model), "--image-dir",
            str(folder.parent / "images"), "--max-tokens", "6", "--batch-size", "2",
            "--device", "cpu", "--threads", "1", "--no-progress", *extra]  # fmt: skip


def test_local_vision_language_model_gives_all_three_views(tmp_path, tiny_vlm):
    folder = write_shop(tmp_path)
    assert enrich_cli.main(local_args(folder, tiny_vlm, "--views", "image,text,both")) == 0
    for view, expected in (("image", IMAGE_ITEMS), ("both", BOTH_ITEMS), ("text", TEXT_ITEMS)):
        texts, meta = read_enriched(folder / f"shop.enriched_{view}.tsv")
        assert list(texts) == expected and all(text.strip() for text in texts.values())
        assert meta["model"] == f"local:{tiny_vlm.name}" and meta["view"] == view
        assert meta["settings"]["max_new_tokens"] == 6


def test_a_local_text_model_refuses_the_image_views(tmp_path, tiny_causal_lm, capsys):
    folder = write_shop(tmp_path)
    assert enrich_cli.main(local_args(folder, tiny_causal_lm, "--views", "text,image")) == 2
    err = capsys.readouterr().err
    assert f"--model {tiny_causal_lm.name} is a text-only model" in err
    assert "vision-language model" in err and "--backend openai" in err
    assert not (folder / "shop.enrich_cache.jsonl").exists()  # refused before any view ran


# ----------------------------------------------------------------------------- features


def test_features_encode_each_view_alone(tmp_path, tiny_clip, capsys):
    from recbole_llmemf.dataset_tools import encoders

    folder = write_shop(tmp_path)
    descriptions = {"image": {"F1": "A red box of tea.", "K3": "A blue knife."},
                    "text": {"F1": "Green tea leaves.", "F3": "Bitter dark chocolate."}}  # fmt: skip
    for view, texts in descriptions.items():
        rows = "".join(f"{item}\t{text}\n" for item, text in texts.items())
        path = folder / f"shop.enriched_{view}.tsv"
        path.write_text(f"item_id:token\tenrichment:token_seq\n{rows}", encoding="utf-8")
        meta = {"model": "openai:stub-vlm", "template_hash": f"hash-{view}", "view": view}
        Path(f"{path}.json").write_text(json.dumps(meta), encoding="utf-8")
    (folder / "shop.yaml").write_text("use_text: False\n", encoding="utf-8")
    args = [str(folder), "--clip", str(tiny_clip), "--no-images", "--no-text", "--enriched-views",
            "image,text", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert features_cli.main(args) == 0

    header = (folder / "shop.itememb_llmimg").read_text().splitlines()[0]
    assert header == "item_id:token\tllmimg_emb:float_seq"
    image = read_item_vectors(str(folder / "shop.itememb_llmimg"), binary_copy=False)
    text = read_item_vectors(str(folder / "shop.itememb_llmtxt"), binary_copy=False)
    assert image.tokens == ["F1", "K3"] and text.tokens == ["F1", "F3"]  # no row without one
    cpu = encoders.pick_device("cpu")
    model, processor = encoders.load_clip(str(tiny_clip), cpu)
    clip_text = encoders.ClipTextEncoder("tiny", model, processor.tokenizer, 4, cpu)
    expected = clip_text.encode(["A red box of tea.", "Green tea leaves."])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(image.matrix[0], expected[0], atol=1e-5)  # the description alone
    np.testing.assert_allclose(text.matrix[0], expected[1], atol=1e-5)
    meta = json.loads((folder / "shop.itememb_llmimg.json").read_text())
    assert meta["field"] == "llmimg_emb" and meta["template_hash"] == "hash-image"
    assert meta["enrichment_model"] == "openai:stub-vlm" and "alone" in meta["text"]
    assert (
        not (folder / "shop.itememb_txt").exists()
        and not (folder / "shop.itememb_llmboth").exists()
    )
    assert (folder / "shop.yaml").read_text() == "use_text: False\n"  # DMESR names its own files

    args[args.index("image,text")] = "both"
    assert features_cli.main(args) == 2
    assert "shop.enriched_both.tsv: not found; llmemf-data enrich --views both" in (
        capsys.readouterr().err
    )
