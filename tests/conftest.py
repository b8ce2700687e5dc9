"""Shared fixtures: RecBole writes log/ and saved/ into the working directory and reads sys.argv.
Model assets (a tiny CLIP, a tiny causal LM) are built here, with random weights and small
tokenizers, and saved with ``save_pretrained``, so the real ``from_pretrained`` paths run offline."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import recbole_llmemf  # noqa: F401  registers LLMEMF before any test builds a Config
from recbole_llmemf.dataset_tools.synthetic import SyntheticSpec, generate

if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core: one torch thread each
    import torch

    torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY_SPEC = SyntheticSpec(
    name="tiny", n_users=80, items_per_group=6, n_groups=3, min_len=6, max_len=9, feature_dim=16
)
TINY_CONFIG = {
    "hidden_size": 16,
    "inner_size": 16,
    "embedding_size": 16,
    "epochs": 1,
    "train_batch_size": 64,
    "eval_batch_size": 64,
    "show_progress": False,
    "use_gpu": False,
    "state": "WARNING",
    "MAX_ITEM_LIST_LENGTH": 8,
}

# The sampled protocol with 5 negatives instead of 999: the tiny domains have 18 items.
SAMPLED_5 = {
    "protocol": "sampled999",
    "eval_args": {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "group_by": "user",
        "mode": "uni5",
    },
}


@pytest.fixture(autouse=True)
def isolated_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])


@dataclass
class TinyDataset:
    name: str
    data_path: Path
    config: dict


@pytest.fixture
def tiny_dataset(tmp_path) -> TinyDataset:
    """A seeded two-domain dataset (80 users, 2 x 18 items, some without image or text)."""
    data_path = tmp_path / "dataset"
    generate(TINY_SPEC, data_path)
    return TinyDataset(TINY_SPEC.name, data_path, {**TINY_CONFIG, "data_path": str(data_path)})


# ----------------------------------------------------------------------------- model assets

# A few byte-pair merges on top of CLIP's byte-level alphabet: "a photo of a cat" becomes
# "a", "photo", "of", "a", "cat"; anything else falls apart into single bytes.
CLIP_MERGES = [
    ("p", "h"),
    ("ph", "o"),
    ("t", "o</w>"),
    ("pho", "to</w>"),
    ("o", "f</w>"),
    ("a", "t</w>"),
    ("c", "at</w>"),
]
CLIP_PROJECTION = 16


def byte_alphabet() -> list[str]:
    """GPT-2 / CLIP byte-level alphabet: the character standing for each byte, in CLIP's order
    (printable bytes first), so that CLIP's token ids hold for single bytes ("a</w>" is 320)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def send_json(handler, payload: dict) -> None:
    """Answer a stub server's request (``http.server.BaseHTTPRequestHandler``) with ``payload``."""
    data = json.dumps(payload).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A random CLIP with a CLIP tokenizer of 521 tokens (77 positions, like OpenAI's CLIP)."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    alphabet = byte_alphabet()
    vocab = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in CLIP_MERGES]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab={v: i for i, v in enumerate(vocab)}, merges=CLIP_MERGES)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    start, end = len(vocab) - 2, len(vocab) - 1
    text_config = dict(
        **small,
        vocab_size=len(vocab),
        max_position_embeddings=77,
        bos_token_id=start,
        eos_token_id=end,
        pad_token_id=end,
    )
    config = CLIPConfig(
        text_config=text_config,
        vision_config=dict(**small, image_size=32, patch_size=8),
        projection_dim=CLIP_PROJECTION,
    )
    torch.manual_seed(0)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    folder = tmp_path_factory.mktemp("tiny_clip")
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory) -> Path:
    """A random one-layer Llama with a byte-level tokenizer and a chat template (SmolLM2's
    special tokens), in a folder that ``--backend local --model FOLDER`` loads."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bytes_only = models.BPE(vocab={c: i for i, c in enumerate(byte_alphabet())}, merges=[])
    backend = Tokenizer(bytes_only)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    # random weights could end an answer at once; the test wants a few generated bytes
    model.generation_config.suppress_tokens = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    folder = tmp_path_factory.mktemp("tiny_causal_lm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
