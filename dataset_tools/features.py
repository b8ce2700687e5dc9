"""Frozen item vectors from CLIP (image, text) or sentence-transformers (text), resumable.

``llmemf-data features <dataset_dir> --clip <name or folder>`` reads ``<name>.item`` and, when
present, ``<name>.enriched.tsv`` from ``llmemf-data enrich``, and writes RecBole atomic feature
files that ``recbole_llmemf.data.fileformat.item_vectors.read_item_vectors`` reads:

- ``<name>.itememb_img`` (``item_id:token<TAB>img_emb:float_seq``): CLIP image vectors
  (``get_image_features``, the model's projection dimension, 512 for ViT-B/32);
- ``<name>.itememb_txt`` (``txt_emb``): text vectors of ``"<title>. <enrichment>"`` (the title alone
  when an item has no enrichment);
- ``<name>.itememb_txtraw`` (``txtraw_emb``, with ``--raw-text``): vectors of the title alone, for
  the paper's "+text without LLM" ablation;
- ``<name>.itememb_llmimg``, ``itememb_llmtxt``, ``itememb_llmboth`` (``llmimg_emb``, ...; with
  ``--enriched-views image,text,both``): text vectors of DMESR's views, the descriptions in
  ``<name>.enriched_<view>.tsv`` (``llmemf-data enrich --views``) alone, no row for an item
  without one; the suffixes of ``dmesr_views`` (properties/model/DMESR.yaml);
- ``<file>.json`` beside each: encoder, dimension, ``normalized`` (``--normalize/--no-normalize``),
  the enrichment's model and template hash, date, counts, so a model run can refuse mismatches;
- ``<name>.feature_coverage.tsv``: items with a title / enrichment / image / text vector per domain,
  also printed.

An item without an input (no title, no image) or whose image is missing or unreadable gets no row:
the loader marks it missing; it never gets a zero vector.

Images. An item's image is the first of these that loads: the ``image_url`` field of the ``.item``
file (an http(s) URL, downloaded with a timeout and retries into ``--image-cache``, or a path
relative to the dataset folder), then ``--image-dir``: ``DIR/<item_id>.<ext>`` or the first image
file in sorted order inside ``DIR/<item_id>/`` (``item_images``).

Long text. CLIP's text tower sees at most 77 positions and an enriched title is often several
hundred tokens, so a text is cut into token windows, each encoded on its own, and the item's vector
is their mean weighted by their token counts (``encoders``), L2-normalised afterwards when
``--normalize`` (the default). A sentence-transformers encoder (``--text-encoder
sentence-transformers:<name or folder>``) is windowed the same way at its ``max_seq_length``.

Resuming. Each output is computed in shards of ``--shard-size`` items under
``<dir>/.llmemf_features/<suffix>/``; a shard file (written atomically) is named by a hash of its
inputs and the encoder settings, so a rerun skips every finished shard and recomputes only shards
whose titles, enrichment, image references or encoder changed. A ``manifest.json`` lists the
shards of the current run; the merge into the output file is atomic (``feature_job``).

Several processes or machines. ``--shard K/N`` computes only every N-th of those shards from K
(same options everywhere, the work folder shared or copied together); ``--merge`` then checks that
every shard is there and writes the files, byte for byte those of one unsharded run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recbole_llmemf.data.fileformat.atomic import atomic_write
from recbole_llmemf.dataset_tools.cpu_threads import torch_threads
from recbole_llmemf.dataset_tools.encoders import (
    ST_PREFIX,
    ClipImageEncoder,
    Encoders,
    load_encoders,
)
from recbole_llmemf.dataset_tools.enriched_file import read_enriched_items
from recbole_llmemf.dataset_tools.errors import EnrichError, FeatureError
from recbole_llmemf.dataset_tools.feature_files import (
    enable_in_dataset_yaml,
    write_coverage,
    write_vectors,
)
from recbole_llmemf.dataset_tools.feature_job import Job, ShardEncoder, run_job
from recbole_llmemf.dataset_tools.item_file import ItemRecord, dataset_name, read_items
from recbole_llmemf.dataset_tools.item_images import ImageFetcher, encode_images

logger = logging.getLogger(__name__)

OUTPUTS = {  # kind -> (file suffix, vector field)
    "img": ("itememb_img", "img_emb"),
    "txt": ("itememb_txt", "txt_emb"),
    "txtraw": ("itememb_txtraw", "txtraw_emb"),
    "llmimg": ("itememb_llmimg", "llmimg_emb"),
    "llmtxt": ("itememb_llmtxt", "llmtxt_emb"),
    "llmboth": ("itememb_llmboth", "llmboth_emb"),
}
VIEW_KINDS = {"image": "llmimg", "text": "llmtxt", "both": "llmboth"}  # --enriched-views


def text_of(item: ItemRecord, enrichment: str | None) -> str:
    if enrichment and item.title:
        return f"{item.title}. {enrichment}"
    return item.title or enrichment or ""


def text_recipe(kind: str, enriched: dict[str, str]) -> str:
    """What a text vector encodes, for the metadata: enrichment only where a file gave one."""
    if kind in VIEW_KINDS.values():
        return "the LLM's description alone (no row without one)"
    if kind == "txt" and enriched:
        return "title. enrichment (the title alone for items without one)"
    return "title only"


def _normalized(vectors: np.ndarray, normalize: bool) -> np.ndarray:
    if not normalize or len(vectors) == 0:
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _encoder_version() -> dict:
    import transformers

    return {"transformers": transformers.__version__}


def run(args: argparse.Namespace) -> int:
    """``llmemf-data features`` (its arguments: llmemf_cli/data/features.py)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        with torch_threads(args.threads):
            write_features(args)
    except (FeatureError, EnrichError, OSError) as error:
        print(f"llmemf-data features: error: {error}", file=sys.stderr)
        return 2
    return 0


@dataclass
class FeatureRun:
    """What every output of one run shares: options, items, enrichment and models."""

    args: argparse.Namespace
    folder: Path
    name: str
    items: list[ItemRecord]
    enriched: dict[str, str]  # item_id -> enrichment text
    enrich_meta: dict  # the enrichment file's metadata
    views: dict[str, tuple[dict[str, str], dict]]  # llm kind -> (descriptions, file metadata)
    encoders: Encoders
    common: dict  # settings of every output (part of its shard keys)


@dataclass
class ComputedVectors:
    """One output's vectors as its job returns them (not yet normalised)."""

    job: Job
    tokens: list[str]
    vectors: np.ndarray
    reasons: Counter  # why items got no vector
    dim: int | None


def write_features(args: argparse.Namespace) -> dict[str, Path]:
    """The whole command; returns the written feature files by kind."""
    folder = Path(args.dataset_dir)
    name = args.name or dataset_name(folder)
    items = read_items(folder, name)
    kinds = chosen_kinds(args, items)
    enriched, enrich_meta = read_enrichment(args, folder, name, items, kinds)
    views = read_views(args, folder, name, items)
    encoders = load_encoders(args, kinds)
    common = {"normalize": args.normalize, **_encoder_version()}
    run = FeatureRun(args, folder, name, items, enriched, enrich_meta, views, encoders, common)
    written: dict[str, set[str]] = {}
    outputs: dict[str, Path] = {}
    reasons_by_kind: dict[str, Counter] = {}
    for kind in kinds:
        computed = compute_vectors(run, kind)
        if args.shard:  # a shard run only computes its shards; --merge writes the files
            continue
        out = write_output(run, kind, computed)
        written[kind], reasons_by_kind[kind] = set(computed.tokens), computed.reasons
        if out is not None:
            outputs[kind] = out
    if args.shard:
        print(f"shard {args.shard[0]}/{args.shard[1]} done; run --merge once every shard is")
        return {}
    coverage = folder / f"{name}.feature_coverage.tsv"
    write_coverage(coverage, items, enriched, written, reasons_by_kind)
    enable_in_dataset_yaml(folder / f"{name}.yaml", outputs)
    return outputs


def chosen_kinds(args: argparse.Namespace, items: list[ItemRecord]) -> list[str]:
    """The outputs to write (img, txt, txtraw) after checking that the options allow them."""
    kinds = [
        k
        for k, skip in (
            ("img", args.no_images),
            ("txt", args.no_text),
            ("txtraw", not args.raw_text),
        )
        if not skip
    ]
    kinds += [VIEW_KINDS[view] for view in args.enriched_views or ()]
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
    if not use_st and set(kinds) - {"img"} and not args.clip:
        raise FeatureError(
            "--clip is required for CLIP text vectors: pass --clip <name or folder>, or "
            f"--text-encoder {ST_PREFIX}all-MiniLM-L6-v2 for text vectors without CLIP"
        )
    return kinds


def read_enrichment(
    args: argparse.Namespace, folder: Path, name: str, items: list[ItemRecord], kinds: list[str]
) -> tuple[dict[str, str], dict]:
    """``(enriched, metadata)`` of the enrichment file; empty where there is none to read."""
    enriched, enrich_meta = {}, {}
    enriched_path = Path(args.enriched) if args.enriched else folder / f"{name}.enriched.tsv"
    if not args.no_enrichment:  # also read for the coverage report
        if enriched_path.is_file():
            enriched, enrich_meta = read_enriched_items(enriched_path, name, items)
        elif args.enriched:
            raise FeatureError(f"{enriched_path}: enrichment file not found")
        elif "txt" in kinds:
            logger.warning("no %s: text vectors use titles only", enriched_path.name)
    return enriched, enrich_meta


def read_views(
    args: argparse.Namespace, folder: Path, name: str, items: list[ItemRecord]
) -> dict[str, tuple[dict[str, str], dict]]:
    """kind -> (descriptions, metadata) of each ``--enriched-views`` view's enrichment file."""
    views = {}
    for view in args.enriched_views or ():
        path = folder / f"{name}.enriched_{view}.tsv"
        if not path.is_file():
            raise FeatureError(f"{path}: not found; llmemf-data enrich --views {view} writes it")
        views[VIEW_KINDS[view]] = read_enriched_items(path, name, items)
    return views


def compute_vectors(run: FeatureRun, kind: str) -> ComputedVectors:
    """One output's vectors through its resumable job (a shard run: only its shards, no vectors)."""
    args = run.args
    suffix, _ = OUTPUTS[kind]
    work_root = Path(args.work_dir) if args.work_dir else run.folder / ".llmemf_features"
    job, encode_shard, signature_of = image_job(run) if kind == "img" else text_job(run, kind)
    tokens, vectors, reasons = run_job(
        job,
        run.items,
        work_root / suffix,
        encode_shard,
        args.shard_size,
        signature_of,
        not args.no_progress,
        part=args.shard,
        merge=args.merge,
    )
    if kind == "img":
        dim = run.encoders.clip_model.config.projection_dim
    else:
        dim = vectors.shape[1] if len(vectors) else None
    return ComputedVectors(job, tokens, vectors, reasons, dim)


def image_job(run: FeatureRun) -> tuple[Job, ShardEncoder, Callable[[Any], Any]]:
    """The image output's job, its shard encoder, and what identifies an item's image inputs."""
    args = run.args
    fetcher = ImageFetcher(
        run.folder,
        Path(args.image_dir) if args.image_dir else None,
        Path(args.image_cache) if args.image_cache else run.folder / ".image_cache",
        timeout=args.download_timeout,
        retries=args.download_retries,
    )
    encoder = ClipImageEncoder(
        args.clip,
        run.encoders.clip_model,
        run.encoders.processor.image_processor,
        args.batch_size,
        run.encoders.device,
    )
    inputs = [fetcher.sources(item) or None for item in run.items]
    job = Job("img", encoder.name, run.common, inputs)

    def encode_shard(sources_list: list) -> tuple[np.ndarray | None, list[str]]:
        return encode_images(sources_list, fetcher, encoder, args.io_workers)

    return job, encode_shard, fetcher.signature


def text_job(run: FeatureRun, kind: str) -> tuple[Job, ShardEncoder, Callable[[Any], Any]]:
    """A text output's job (txt: title and enrichment; txtraw: the title alone; a view: its
    description alone), its shard encoder, and what identifies an item's input (the text)."""
    encoder = run.encoders.text
    if kind in run.views:
        texts = [run.views[kind][0].get(item.item_id) or None for item in run.items]
    else:
        texts = [
            text_of(item, run.enriched.get(item.item_id) if kind == "txt" else None) or None
            for item in run.items
        ]
    recipe = "description" if kind in run.views else "title. enrichment"
    settings = {**run.common, "window": encoder.window, "recipe": recipe}
    job = Job(kind, encoder.name, settings, texts)

    def encode_shard(shard_texts: list) -> tuple[np.ndarray, list[str]]:
        return encoder.encode(shard_texts), [""] * len(shard_texts)

    return job, encode_shard, lambda inputs: inputs


def write_output(run: FeatureRun, kind: str, computed: ComputedVectors) -> Path | None:
    """Write one output's vector file and its ``.json``; None when no item has a vector."""
    suffix, field = OUTPUTS[kind]
    vectors = _normalized(computed.vectors, run.args.normalize)
    out = run.folder / f"{run.name}.{suffix}"
    if not computed.tokens:
        logger.warning("%s: no item has a vector; file not written", out.name)
        return None
    write_vectors(out, field, computed.tokens, vectors)
    meta = output_metadata(run, kind, out, computed, vectors)
    with atomic_write(f"{out}.json") as file:
        json.dump(meta, file, indent=2, ensure_ascii=False)
        file.write("\n")
    logger.info(
        "wrote %s: %d of %d items, %d-d",
        out.name,
        len(computed.tokens),
        len(run.items),
        meta["dimension"],
    )
    return out


def output_metadata(
    run: FeatureRun, kind: str, out: Path, computed: ComputedVectors, vectors: np.ndarray
) -> dict:
    """What ``<file>.json`` records: encoder, dimension, normalisation, text, enrichment, counts."""
    text = kind != "img"
    source = run.enrich_meta if kind == "txt" and run.enriched else None
    if kind in run.views:
        source = run.views[kind][1]
    return {
        "file": out.name,
        "field": OUTPUTS[kind][1],
        "modality": "text" if text else "image",
        "encoder": computed.job.encoder_name,
        "dimension": int(computed.dim if computed.dim is not None else vectors.shape[1]),
        "normalized": bool(run.args.normalize),
        "text": text_recipe(kind, run.enriched) if text else None,
        "window_tokens": run.encoders.text.window if text else None,
        "long_text": "token windows, token-weighted mean" if text else None,
        "enrichment_model": source.get("model") if source is not None else None,
        "template_hash": source.get("template_hash") if source is not None else None,
        "items": len(run.items),
        "rows": len(computed.tokens),
        "missing": dict(sorted(computed.reasons.items())),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **_encoder_version(),
    }
