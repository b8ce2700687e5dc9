"""``llmemf-data features``: its arguments; ``main`` parses them, then runs the command."""

from __future__ import annotations

import argparse

from llmemf_cli.common import entry_point
from llmemf_cli.data.enrich import parse_views
from llmemf_cli.options import THREADS_HELP, add_shard_options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data features",
        description="Frozen CLIP image / text item vectors (or sentence-transformers text), "
        "written as RecBole atomic feature files; resumable.",
    )
    parser.add_argument("dataset_dir", help="dataset folder <dir>/<name>/ holding <name>.item")
    parser.add_argument(
        "--clip",
        help="CLIP model: Hugging Face name or local folder, e.g. openai/clip-vit-base-patch32 "
        "(default: none; needed for image vectors and for CLIP text vectors)",
    )
    parser.add_argument(
        "--text-encoder",
        default="clip",
        help="'clip' or 'sentence-transformers:<name or folder>' (default: %(default)s)",
    )
    parser.add_argument("--name", help="dataset name (default: the folder's name)")
    parser.add_argument(
        "--enriched", help="enrichment TSV (default: <dir>/<name>.enriched.tsv if it exists)"
    )
    parser.add_argument(
        "--no-enrichment", action="store_true", help="ignore the enrichment file: text = title only"
    )
    parser.add_argument("--image-dir", help="images as DIR/<item_id>.jpg or DIR/<item_id>/*.jpg")
    parser.add_argument("--image-cache", help="downloaded images (default: <dir>/.image_cache)")
    parser.add_argument("--work-dir", help="shards and manifests (default: <dir>/.llmemf_features)")
    parser.add_argument("--no-images", action="store_true", help="skip <name>.itememb_img")
    parser.add_argument("--no-text", action="store_true", help="skip <name>.itememb_txt")
    parser.add_argument(
        "--raw-text",
        action="store_true",
        help="also write <name>.itememb_txtraw (title only, for the ablation)",
    )
    parser.add_argument(
        "--enriched-views",
        type=parse_views,
        metavar="VIEWS",
        help="also write DMESR's views, a comma list of image, text, both: the descriptions of "
        "<name>.enriched_<view>.tsv (llmemf-data enrich --views) alone, as text vectors, into "
        "<name>.itememb_llmimg, itememb_llmtxt, itememb_llmboth (dmesr_views of DMESR.yaml)",
    )
    parser.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="L2-normalise every vector, recorded in the metadata (default: yes)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="images or text windows per forward pass (default: %(default)s)",
    )
    parser.add_argument(
        "--shard-size",
        type=int,
        default=1024,
        help="items per resumable shard (default: %(default)s)",
    )
    parser.add_argument(
        "--io-workers",
        type=int,
        default=8,
        help="threads that download and decode images (default: %(default)s)",
    )
    parser.add_argument(
        "--download-timeout",
        type=float,
        default=10.0,
        help="seconds per image download (default: %(default)s)",
    )
    parser.add_argument(
        "--download-retries",
        type=int,
        default=3,
        help="retries of a failed image download (default: %(default)s)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default: %(default)s)"
    )
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_shard_options(parser, "shard of --shard-size items (.item order)")
    return parser


main = entry_point(build_parser, "recbole_llmemf.dataset_tools.features:run")
