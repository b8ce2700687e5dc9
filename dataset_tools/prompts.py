"""The paper's enrichment prompt (§3.3) and DMESR's three view prompts: the templates, an item's
prompt, the template's hash (part of the cache key) and the answer with the model's ``<think>``
reasoning removed."""

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

# DMESR's three-way prompting (``llmemf-data enrich --views``): one instruction, asked about the
# item's picture, its title, or both, so that the three descriptions differ only in what the model
# was shown. The image view names no title: that description must come from the picture alone.
VIEW_TEMPLATES = {
    "image": (
        "The picture shows an item which is type of {domain}. Describe the item from its picture: "
        "what it is, its visible features, materials, colours and style, and the users it suits. "
        "Answer with a short paragraph followed by keywords."
    ),
    "text": (
        "An item which is type of {domain} has the title {title}. Describe the item from its "
        "title: what it is, its features, materials and style, and the users it suits. Answer "
        "with a short paragraph followed by keywords."
    ),
    "both": (
        "The picture shows an item which is type of {domain} with the title {title}. Describe the "
        "item from its picture and its title: what it is, its features, materials, colours and "
        "style, and the users it suits. Answer with a short paragraph followed by keywords."
    ),
}


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
