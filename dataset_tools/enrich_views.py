"""DMESR's three-way prompting, ``llmemf-data enrich --views image,text,both``: a multimodal LLM
describes each item from its picture, from its title, and from both. Each view has its own prompt
(``prompts.VIEW_TEMPLATES``), its own items (the image views: those with an image, found and
downloaded as ``llmemf-data features`` does, ``item_images``), its own output
``<name>.enriched_<view>.tsv`` and its own cache entries (the view is part of the key). Without
``--views`` the command runs LLM-EMF's one enrichment of the title (``PAPER``), whose output and
cache lines are those of the command before views existed."""

from __future__ import annotations

import argparse
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from recbole_llmemf.dataset_tools.errors import EnrichError
from recbole_llmemf.dataset_tools.item_file import ItemRecord
from recbole_llmemf.dataset_tools.item_images import ImageFetcher
from recbole_llmemf.dataset_tools.llm_backends import Backend
from recbole_llmemf.dataset_tools.prompts import DEFAULT_TEMPLATE, VIEW_TEMPLATES, render_prompt

logger = logging.getLogger(__name__)

# a chunk of items -> their answers, None where the item's image did not load
Request = Callable[[list[ItemRecord]], "list[str | None]"]


@dataclass(frozen=True)
class View:
    name: str  # in the cache key and the output's name; "" for LLM-EMF's enrichment
    template: str
    image: bool  # the prompt shows the item's image: items without one are skipped
    title: bool  # the prompt names the item's title: items without one are skipped

    def output(self, folder: Path, dataset: str) -> Path:
        return folder / f"{dataset}.enriched{'_' + self.name if self.name else ''}.tsv"


PAPER = View("", DEFAULT_TEMPLATE, image=False, title=True)
VIEWS = {
    "image": View("image", VIEW_TEMPLATES["image"], image=True, title=False),
    "text": View("text", VIEW_TEMPLATES["text"], image=False, title=True),
    "both": View("both", VIEW_TEMPLATES["both"], image=True, title=True),
}


def chosen_views(names: Sequence[str] | None, template_file: str | None) -> list[View]:
    """The views of ``--views`` (``PAPER`` without it), a ``--template-file``'s prompt in place of
    the view's own: one view at a time then, as a file holds one prompt."""
    views = [VIEWS[name] for name in names] if names else [PAPER]
    if not template_file:
        return views
    if len(views) > 1:
        raise EnrichError("--template-file holds one prompt: give one view at a time with it")
    template = Path(template_file).read_text(encoding="utf-8").strip()
    if views[0].title and "{title}" not in template:
        raise EnrichError(f"{template_file}: the template has no {{title}}")
    return [replace(views[0], template=template)]


def image_fetcher(args: argparse.Namespace, folder: Path) -> ImageFetcher:
    """Images as ``llmemf-data features`` finds them, downloads shared through one cache."""
    return ImageFetcher(
        folder,
        Path(args.image_dir) if args.image_dir else None,
        Path(args.image_cache) if args.image_cache else folder / ".image_cache",
    )


def check_sees_images(backend: Backend) -> None:
    """Raises EnrichError for a backend that cannot be shown images: a local text-only model."""
    if not backend.sees_images:
        raise EnrichError(
            f"--model {backend.label.partition(':')[2]} is a text-only model; the image and both "
            "views need a vision-language model (transformers image-text-to-text, e.g. "
            "HuggingFaceTB/SmolVLM-256M-Instruct), or --backend openai with a model that reads "
            "images"
        )


def view_items(
    items: Sequence[ItemRecord], view: View, with_image: set[str], limit: int | None, seed: int
) -> list[ItemRecord]:
    """The items ``view`` can ask about, in file order. With ``limit``, the first ``limit`` of them
    in one seeded order of all items, so that the views of a limited run share their items where
    they can (DMESR aligns an item's views with each other).

    Raises:
        EnrichError: an image view, and no item has an image.
    """
    if view.image and not with_image:
        raise EnrichError(
            f"--views {view.name} shows the LLM each item's image, and no item has one: no "
            "image_url in the .item file, and no --image-dir holding <item_id>.jpg files"
        )
    no_image = {item for item in items if view.image and item.item_id not in with_image}
    no_title = {item for item in items if view.title and not item.title}
    skipped = no_image | no_title
    if skipped:
        reasons = [f"{len(no_image)} without an image"] * bool(no_image)
        reasons += [f"{len(no_title)} without a title"] * bool(no_title)
        logger.info(
            "%s view: %d of %d items skipped (%s)",
            view.name,
            len(skipped),
            len(items),
            ", ".join(reasons),
        )
    usable = [item for item in items if item not in skipped]
    if limit is None or limit >= len(usable):
        return usable
    order = {item: rank for rank, item in enumerate(random.Random(seed).sample(items, len(items)))}
    chosen = set(sorted(usable, key=order.get)[:limit])
    return [item for item in usable if item in chosen]


def text_request(template: str, backend: Backend) -> Request:
    def request(chunk: list[ItemRecord]) -> list[str | None]:
        return backend.generate([render_prompt(template, item) for item in chunk])

    return request


class ImageRequest:
    """The request of a view that shows the image. The images are loaded in the worker thread, a
    chunk at a time, so only the chunks in flight are in memory; an item whose image does not
    load (download failed, unreadable, ...) gets None, and its reason is counted in
    ``unavailable``."""

    def __init__(
        self, template: str, backend: Backend, fetcher: ImageFetcher, unavailable: Counter
    ):
        self.template = template
        self.backend = backend
        self.fetcher = fetcher
        self.unavailable = unavailable  # reason -> items
        self._lock = threading.Lock()

    def __call__(self, chunk: list[ItemRecord]) -> list[str | None]:
        loaded = [self.fetcher.load(self.fetcher.sources(item)) for item in chunk]
        shown = [i for i, (image, _) in enumerate(loaded) if image is not None]
        with self._lock:
            self.unavailable.update(reason for image, reason in loaded if image is None)
        replies: list[str | None] = [None] * len(chunk)
        if shown:
            prompts = [render_prompt(self.template, chunk[i]) for i in shown]
            answers = self.backend.generate(prompts, [loaded[i][0] for i in shown])
            for i, answer in zip(shown, answers):
                replies[i] = answer
        return replies


def without_image(fetcher: ImageFetcher) -> Callable[[ItemRecord], bool]:
    """``--merge`` of an image view: whether an item's image does not load now, so that no shard
    could ask about it and it needs no answer."""
    return lambda item: fetcher.load(fetcher.sources(item))[0] is None
