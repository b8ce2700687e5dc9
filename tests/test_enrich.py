"""llmemf-data enrich: prompt, think-stripping, cache, the OpenAI-compatible backend against a
local stub server (answers, 429, 500, 401), kill-and-resume, and the local backend with a tiny
random causal LM (tests/conftest.py)."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import send_json

from llmemf_cli.data import enrich as enrich_cli
from recbole_llmemf.dataset_tools import enrich
from recbole_llmemf.dataset_tools.enrich import select_items
from recbole_llmemf.dataset_tools.enrich_cache import EnrichmentCache, cache_key
from recbole_llmemf.dataset_tools.enriched_file import read_enriched
from recbole_llmemf.dataset_tools.errors import AuthError, EnrichError
from recbole_llmemf.dataset_tools.item_file import ItemRecord, read_items
from recbole_llmemf.dataset_tools.llm_backends import Backend
from recbole_llmemf.dataset_tools.prompts import (
    DEFAULT_TEMPLATE,
    render_prompt,
    strip_think,
    template_hash,
)

SECRET = "sk-test-0123456789-DO-NOT-LEAK"
ITEMS = [
    ("F1", "Food", "Organic Green Tea, 100 bags"),
    ("F2", "Food", "Rate Limited Chocolate {70%}"),  # the stub answers 429 once
    ("F3", "Food", ""),  # no title: not sent
    ("K1", "Kitchen", "Boom Cast Iron Skillet"),  # the stub answers 500 once
    ("K2", "Kitchen", "Think Chef Knife"),  # the stub answers with a <think> section
    ("K3", "Kitchen", "Plain Cutting Board"),
]


def write_dataset(root: Path, name: str = "shop", items=ITEMS) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    lines = ["item_id:token\tdomain:token\ttitle:token_seq"]
    lines += ["\t".join(item) for item in items]
    (folder / f"{name}.item").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------- pure functions


def test_strip_think():
    assert strip_think("<think>hmm\nlong</think>\n\nThe answer.") == "The answer."
    assert strip_think("<THINK>a</THINK>x<think>b</think>y") == "xy"
    assert strip_think("reasoning without an opening tag</think> answer") == "answer"
    assert strip_think("answer <think>cut off by max_tokens") == "answer"
    assert strip_think("  plain  ") == "plain"
    assert strip_think("<think>only thoughts</think>") == ""


def test_prompt_is_the_papers_and_braces_survive():
    item = ItemRecord("F2", "Food", "Dark {70%} Chocolate")
    prompt = render_prompt(DEFAULT_TEMPLATE, item)
    assert prompt.startswith(
        "Generate additional contextual information for an item which is type of Food with "
        "Dark {70%} Chocolate. Provide detailed insights and keywords"
    )
    assert "cross-domain recommendation context." in prompt
    assert template_hash(DEFAULT_TEMPLATE) != template_hash(DEFAULT_TEMPLATE + " ")


def test_read_items_names_file_and_line(tmp_path):
    folder = write_dataset(tmp_path)
    items = read_items(folder)
    assert [i.item_id for i in items] == [i[0] for i in ITEMS]
    assert items[1].title == "Rate Limited Chocolate {70%}"
    with open(folder / "shop.item", "a", encoding="utf-8") as file:
        file.write("X1\tFood\n")
    with pytest.raises(EnrichError, match=r"shop\.item:8: expected 3 fields, got 2"):
        read_items(folder)


def test_limit_is_a_stable_sample_of_titled_items(tmp_path):
    items = [ItemRecord(f"I{i}", "Food", f"title {i}" if i % 3 else "") for i in range(30)]
    first = select_items(items, 5, seed=1)
    assert first == select_items(items, 5, seed=1)
    assert len(first) == 5 and all(item.title for item in first)
    assert len(select_items(items, None, seed=1)) == 20


# ----------------------------------------------------------------------------- stub server


class StubServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 with scripted failures."""

    def __init__(self, fail_once=None, always=None):
        self.requests: list[dict] = []
        self.auth: list[str] = []
        self.fail_once = dict(fail_once or {})  # word in prompt -> status, once
        self.always = always  # status for every request
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                with server.lock:
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization", ""))
                    status = server.always
                    for word, code in list(server.fail_once.items()):
                        if word in prompt:
                            status = code
                            del server.fail_once[word]
                if self.path != "/v1/chat/completions":
                    status = 404
                if status:
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "scripted"}')
                    return
                title = prompt.split(" with ", 1)[1].split(". Provide", 1)[0]
                text = f"Insights about {title}:\nattributes\tand users."
                if "Think" in title:
                    text = f"<think>the key might be {SECRET}?</think>\n{text}"
                send_json(self, {"choices": [{"message": {"role": "assistant", "content": text}}]})

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def openai_args(folder: Path, url: str, *extra: str, model: str = "stub-model") -> list[str]:
    return [str(folder), "--backend", "openai", "--base-url", url, "--model", model,
            "--backoff", "0", "--workers", "3", "--no-progress", *extra]  # fmt: skip


def all_output_text(root: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in root.rglob("*") if p.is_file())  # fmt: skip


def test_openai_backend_retries_caches_and_never_leaks_the_key(tmp_path, monkeypatch, caplog,
                                                               capsys):  # fmt: skip
    folder = write_dataset(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    with StubServer(fail_once={"Rate Limited": 429, "Boom": 500}) as server:
        assert enrich_cli.main(openai_args(folder, server.url)) == 0
        first_requests = len(server.requests)
        assert first_requests == 5 + 2  # five titled items, one retry after 429 and one after 500
        assert set(server.auth) == {f"Bearer {SECRET}"}
        assert {r["model"] for r in server.requests} == {"stub-model"}

        texts, meta = read_enriched(folder / "shop.enriched.tsv")
        assert set(texts) == {"F1", "F2", "K1", "K2", "K3"}
        assert texts["F1"] == "Insights about Organic Green Tea, 100 bags: attributes and users."
        assert texts["K2"] == "Insights about Think Chef Knife: attributes and users."  # no think
        assert meta["model"] == "openai:stub-model"
        assert meta["template_hash"] == template_hash(DEFAULT_TEMPLATE)
        assert meta["enriched"] == 5 and meta["items"] == 6
        lines = (folder / "shop.enrich_cache.jsonl").read_text(encoding="utf-8").splitlines()
        assert sorted(json.loads(line)["item_id"] for line in lines) == [
            "F1",
            "F2",
            "K1",
            "K2",
            "K3",
        ]
        assert "\n" in json.loads(lines[0])["text"]  # the cache keeps the answer as given

        # a second run does no work
        assert enrich_cli.main(openai_args(folder, server.url)) == 0
        assert len(server.requests) == first_requests
        # another model or template is a cache miss, not a silent reuse
        assert enrich_cli.main(openai_args(folder, server.url, model="other-model")) == 0
        assert len(server.requests) == first_requests + 5
        template = tmp_path / "template.txt"
        template.write_text(
            "Describe a {domain} product with {title}. Provide facts.", encoding="utf-8"
        )
        assert (
            enrich_cli.main(openai_args(folder, server.url, "--template-file", str(template))) == 0
        )
        assert len(server.requests) == first_requests + 10
        assert len(EnrichmentCache(folder / "shop.enrich_cache.jsonl").entries) == 15

    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err, all_output_text(tmp_path)):
        assert SECRET not in text


def test_refused_key_is_a_clear_error_without_the_key(tmp_path, monkeypatch, caplog, capsys):
    folder = write_dataset(tmp_path)
    monkeypatch.setenv("MY_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    with StubServer(always=401) as server:
        assert enrich_cli.main(openai_args(folder, server.url, "--api-key-env", "MY_KEY")) == 2
        assert len(server.requests) <= 3  # stopped at once, at most the requests in flight
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "MY_KEY" in err and "it is set" in err
    assert SECRET not in err + caplog.text + all_output_text(tmp_path)
    assert (folder / "shop.enrich_cache.jsonl").read_text() == ""


def test_items_that_keep_failing_are_retried_by_the_next_run(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with StubServer(fail_once={"Boom": 503}) as server:
        args = openai_args(folder, server.url, "--retries", "0")
        assert enrich_cli.main(args) == 1  # K1 failed, the rest are cached
        assert set(read_enriched(folder / "shop.enriched.tsv")[0]) == {"F1", "F2", "K2", "K3"}
        before = len(server.requests)
        assert enrich_cli.main(args) == 0
        assert len(server.requests) == before + 1  # only K1 again
        assert set(server.auth) == {""}  # no key set: no Authorization header


# ----------------------------------------------------------------------------- failing fast


def unused_url() -> str:
    """A local port nothing listens on: every request is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def count_requests(monkeypatch, refuse_first: int = 0) -> list[int]:
    """Count urlopen calls; with ``refuse_first``, each item's first attempts fail to connect."""
    calls, attempts = [], {}
    real_urlopen = urllib.request.urlopen

    def urlopen(request, timeout):
        calls.append(1)
        prompt = json.loads(request.data)["messages"][0]["content"]
        attempts[prompt] = attempts.get(prompt, 0) + 1
        if attempts[prompt] <= refuse_first:
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        return real_urlopen(request, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def test_no_server_stops_after_a_few_connection_failures(tmp_path, monkeypatch, capsys):
    """Without this, each item was tried 6 times with backoff (about 33 s per item and worker)."""
    folder = write_dataset(tmp_path)
    calls = count_requests(monkeypatch)
    url = unused_url()
    assert enrich_cli.main(openai_args(folder, url, "--retries", "5", "--backoff", "0.2")) == 2
    assert len(calls) <= 3 + 2  # three in a row, plus at most one more per other worker
    err = capsys.readouterr().err
    assert f"cannot reach {url}/chat/completions" in err and "connection failures in a row" in err
    assert "--base-url" in err


def test_connection_failures_that_recover_do_not_stop_the_run(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path)
    calls = count_requests(monkeypatch, refuse_first=2)  # 2 failures, then an answer, per item
    with StubServer() as server:
        args = openai_args(folder, server.url, "--workers", "1", "--max-connection-failures", "3")
        assert enrich_cli.main(args) == 0
    assert len(calls) == 5 * 3
    assert len(read_enriched(folder / "shop.enriched.tsv")[0]) == 5


def test_a_failed_run_never_replaces_a_fuller_output(tmp_path, monkeypatch, capsys):
    folder = write_dataset(tmp_path)
    out = folder / "shop.enriched.tsv"
    with StubServer() as server:
        assert enrich_cli.main(openai_args(folder, server.url)) == 0
    good = out.read_bytes(), (folder / "shop.enriched.tsv.json").read_bytes()
    assert len(read_enriched(out)[0]) == 5

    with StubServer(always=503) as server:  # another model, and the server fails every request
        args = openai_args(folder, server.url, "--retries", "0", model="other-model")
        assert enrich_cli.main(args) == 1
    assert "shop.enriched.tsv kept" in capsys.readouterr().out
    with StubServer(always=401) as server:  # refused: an error, and still the good file stays
        assert enrich_cli.main(openai_args(folder, server.url, model="other-model")) == 2
    with StubServer(fail_once={"Boom": 503}) as server:  # 4 of 5 answers: fewer, kept
        args = openai_args(folder, server.url, "--retries", "0", model="other-model")
        assert enrich_cli.main(args) == 1
    assert (out.read_bytes(), (folder / "shop.enriched.tsv.json").read_bytes()) == good

    with StubServer() as server:  # the run that finishes writes the new model's answers
        args = openai_args(folder, server.url, model="other-model")
        assert enrich_cli.main(args) == 0
    texts, meta = read_enriched(out)
    assert len(texts) == 5 and meta["model"] == "openai:other-model"
    cached = EnrichmentCache(folder / "shop.enrich_cache.jsonl").entries
    assert len(cached) == 10  # the 4 answers of the failed run were kept in the cache and reused


@pytest.mark.parametrize(
    "key", [SECRET, "sk_live_abcdefghijklmnop", "Ab12Cd34Ef56Gh78Ij90Kl12Mn34"]
)
def test_a_key_passed_as_the_variable_name_is_refused_unechoed(tmp_path, key, caplog, capsys):
    folder = write_dataset(tmp_path)
    caplog.set_level(logging.DEBUG)
    with StubServer() as server:
        assert enrich_cli.main(openai_args(folder, server.url, "--api-key-env", key)) == 2
        assert server.requests == []
    err = capsys.readouterr().err
    assert "--api-key-env takes the NAME of the environment variable" in err
    assert key not in err + caplog.text + all_output_text(tmp_path)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "MY_KEY", "DEEPSEEK_API_KEY", "key2"])
def test_variable_names_are_not_mistaken_for_keys(name):
    assert not enrich.looks_like_a_key(name)


# ----------------------------------------------------------------------------- kill and resume


class FakeBackend(Backend):
    """Deterministic answers; raises after ``fail_after`` items, like a run killed mid-way."""

    label = "fake:model"
    workers = 1

    def __init__(self, fail_after: int | None = None, batch_size: int = 1):
        self.fail_after = fail_after
        self.batch_size = batch_size
        self.seen: list[str] = []

    def generate(self, prompts):
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.seen += prompts
        return [f"<think>x</think>about: {p.split(' with ')[1][:30]}" for p in prompts]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_kill_and_resume_gives_the_same_files(tmp_path, monkeypatch, batch_size):
    many = [(f"I{i:02d}", "Food" if i % 2 else "Kitchen", f"Thing number {i}") for i in range(12)]
    whole = write_dataset(tmp_path / "whole", items=many)
    resumed = write_dataset(tmp_path / "resumed", items=many)
    args = ["--backend", "local", "--no-progress"]

    backend = FakeBackend(batch_size=batch_size)
    monkeypatch.setattr(enrich, "make_backend", lambda a: backend)
    assert enrich_cli.main([str(whole), *args]) == 0
    assert len(backend.seen) == 12

    killed = FakeBackend(fail_after=5, batch_size=batch_size)
    monkeypatch.setattr(enrich, "make_backend", lambda a: killed)
    with pytest.raises(KeyboardInterrupt):
        enrich_cli.main([str(resumed), *args])
    cache_path = resumed / "shop.enrich_cache.jsonl"
    done = len(cache_path.read_text().splitlines())
    assert done == len(killed.seen) >= 5  # every finished item was written at once
    with open(cache_path, "a", encoding="utf-8") as file:  # a kill in the middle of a write
        file.write('{"item_id": "I11", "mod')

    again = FakeBackend(batch_size=batch_size)
    monkeypatch.setattr(enrich, "make_backend", lambda a: again)
    assert enrich_cli.main([str(resumed), *args]) == 0
    assert len(again.seen) == 12 - done  # nothing finished is redone
    assert (resumed / "shop.enriched.tsv").read_bytes() == (
        whole / "shop.enriched.tsv"
    ).read_bytes()

    def records(path):
        return sorted(path.read_text().splitlines())

    assert records(cache_path) == records(whole / "shop.enrich_cache.jsonl")
    nothing = FakeBackend(fail_after=0)
    monkeypatch.setattr(enrich, "make_backend", lambda a: nothing)
    assert enrich_cli.main([str(resumed), *args]) == 0  # a finished run does no work


class RefusedWhileAnswering(FakeBackend):
    """Two requests at once: the second is refused while the first's answer is still on its way."""

    workers = 2

    def __init__(self):
        super().__init__()
        self.refused = threading.Event()

    def generate(self, prompts):
        if "number 1" in prompts[0]:
            self.refused.set()
            raise AuthError("key refused")
        assert self.refused.wait(10)
        time.sleep(0.2)  # the refusal reaches the main thread first
        return super().generate(prompts)


def test_answers_that_arrive_after_a_fatal_error_are_still_cached(tmp_path):
    items = [ItemRecord(f"I{i}", "Food", f"Thing number {i}") for i in range(2)]
    backend = RefusedWhileAnswering()
    with EnrichmentCache(tmp_path / "cache.jsonl") as cache:
        with pytest.raises(AuthError):
            enrich.run_enrichment(items, DEFAULT_TEMPLATE, backend, cache, progress=False)
    with EnrichmentCache(tmp_path / "cache.jsonl") as cache:
        key = cache_key("I0", template_hash(DEFAULT_TEMPLATE), backend.label)
        assert cache.get(key)["text"].startswith("about: Thing number 0")
        assert cache_key("I1", template_hash(DEFAULT_TEMPLATE), backend.label) not in cache


def test_cache_rejects_a_corrupt_line_in_the_middle(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text('{"item_id": "a", "template_hash": "h", "model": "m", "text": "t"}\n'
                    "not json\n", encoding="utf-8")  # fmt: skip
    with pytest.raises(EnrichError, match=r"cache\.jsonl:2: not a cache record"):
        EnrichmentCache(path)


# ----------------------------------------------------------------------------- local backend


def test_local_backend_writes_text_for_a_few_items(tmp_path, tiny_causal_lm):
    folder = write_dataset(tmp_path)
    args = [str(folder), "--backend", "local", "--model", str(tiny_causal_lm), "--limit", "2",
            "--max-tokens", "8", "--batch-size", "2", "--device", "cpu", "--threads", "1",
            "--no-progress"]  # fmt: skip
    assert enrich_cli.main(args) == 0
    texts, meta = read_enriched(folder / "shop.enriched.tsv")
    assert len(texts) == 2 and all(text.strip() for text in texts.values())
    assert meta["model"] == f"local:{tiny_causal_lm.name}"
