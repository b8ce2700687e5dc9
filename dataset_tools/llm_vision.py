"""The local backend's vision-language models: a transformers image-text-to-text model
(``AutoModelForImageTextToText`` with its ``AutoProcessor``: LLaVA, Qwen2-VL, SmolVLM, Gemma 3,
...) loaded with ``from_pretrained``, and greedy generation for a batch of prompts, each about one
image or none, through the processor's chat template."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from recbole_llmemf.dataset_tools.errors import EnrichError

if TYPE_CHECKING:
    import PIL.Image

logger = logging.getLogger(__name__)


def is_vision_language(name_or_dir: str, gguf_file: str | None) -> bool:
    """True when transformers loads the model as image-text-to-text; reads its config, no weights.
    A ``.gguf`` file is a text model (transformers reads no vision tower from one)."""
    if gguf_file:
        return False
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(name_or_dir)
    except (OSError, ValueError):
        return False  # the causal LM's loader then says what is wrong, as it did before
    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def load(name_or_dir: str, device: str) -> tuple[Any, Any]:
    """``(processor, model)`` on ``device``; the processor pads on the left, as generation
    continues from the right end."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    logger.info("loading %s (vision-language) on %s", name_or_dir, device)
    processor = AutoProcessor.from_pretrained(name_or_dir)
    if getattr(processor, "chat_template", None) is None:
        raise EnrichError(
            f"{name_or_dir}: its processor has no chat template, so the image cannot be placed in "
            "the prompt; use an instruction-tuned vision-language model"
        )
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForImageTextToText.from_pretrained(name_or_dir, dtype=torch.float32)
    return processor, model.to(device).eval()


def generate(
    processor: Any,
    model: Any,
    prompts: list[str],
    images: list[PIL.Image.Image] | None,
    settings: dict,
) -> list[str]:
    """The answers to ``prompts``, the i-th shown ``images[i]`` (``images`` None: text alone)."""
    import torch

    shown = [None] * len(prompts) if images is None else images
    texts = [
        processor.apply_chat_template(
            [{"role": "user", "content": _content(prompt, image is not None)}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for prompt, image in zip(prompts, shown)
    ]
    # one list per prompt: the batched form that processors taking several images per prompt
    # need, and that the others flatten
    pictures = None if images is None else [[image] for image in images]
    batch = processor(text=texts, images=pictures, return_tensors="pt", padding=True)
    batch = batch.to(model.device)
    with torch.inference_mode():
        output = model.generate(**batch, **settings, pad_token_id=processor.tokenizer.pad_token_id)
    new_tokens = output[:, batch["input_ids"].shape[1] :]
    return processor.batch_decode(new_tokens, skip_special_tokens=True)


def _content(prompt: str, with_image: bool) -> list[dict]:
    """The user message's parts: the image's place (the chat template puts its tokens there) first,
    then the prompt."""
    return [{"type": "image"}] * with_image + [{"type": "text", "text": prompt}]
