"""The paper's enrichment prompt (§3.3): the template, an item's prompt, the template's hash (part
of the cache key) and the answer with the model's ``<think>`` reasoning removed."""

from __future__ import annotations

import hashlib
import re

from recbole_llmemf.dataset_tools.item_file import ItemRecord

DEFAULT_TEMPLATE = (
    "Generate additional contextual information for an item which is type of {domain} with "
    "{title}. Provide detailed insights and keywords about the item's features. The output should "
    "include specific attributes, and potential users that could enhance the understanding of the "
    "item in a cross-domain recommendation context."
)


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
