"""Item images: where an item's image is (its ``image_url``, then ``--image-dir``), downloading it
(cached, with a timeout and retries), decoding it, and encoding images a batch at a time. A missing
or broken image is a reason for the coverage report, never an error."""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recbole_llmemf.data.fileformat.atomic import atomic_write
from recbole_llmemf.dataset_tools.encoders import ClipImageEncoder
from recbole_llmemf.dataset_tools.item_file import ItemRecord

if TYPE_CHECKING:
    import PIL.Image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


@dataclass
class ImageFetcher:
    """Finds, downloads (cached) and decodes item images; a failure is a reason, not an error."""

    dataset_dir: Path
    image_dir: Path | None
    cache_dir: Path
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5

    def sources(self, item: ItemRecord) -> list[str]:
        found = []
        if item.image_url:
            url = item.image_url
            found.append(url if _is_url(url) else str(self.dataset_dir / url))
        if self.image_dir is not None:
            for suffix in IMAGE_SUFFIXES:
                path = self.image_dir / f"{item.item_id}{suffix}"
                if path.is_file():
                    found.append(str(path))
                    break
            folder = self.image_dir / item.item_id
            if folder.is_dir():
                files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if files:
                    found.append(str(files[0]))
        return found

    def load(self, sources: Sequence[str]) -> tuple[PIL.Image.Image | None, str]:
        """``(RGB PIL image, "")`` from the first source that works, else ``(None, reason)``."""
        from PIL import Image

        reason = "no image reference"
        for source in sources:
            path = self.download(source) if _is_url(source) else Path(source)
            if path is None:
                reason = "download failed"
                continue
            if not path.is_file():
                reason = "file not found"
                continue
            try:
                with Image.open(path) as image:
                    return image.convert("RGB"), ""  # convert() decodes the whole file
            except Exception as error:  # PIL raises many types for broken files
                logger.debug("%s: unreadable image (%s)", path, error)
                reason = "unreadable image"
        return None, reason

    def download(self, url: str) -> Path | None:
        suffix = Path(urllib.parse.urlparse(url).path).suffix.lower()
        target = self.cache_dir / (
            hashlib.sha256(url.encode()).hexdigest()[:32]
            + (suffix if suffix in IMAGE_SUFFIXES else ".img")
        )
        if target.is_file():
            return target
        for attempt in range(self.retries + 1):
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "recbole-llmemf"})
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    data = response.read()
                with atomic_write(target, "wb") as file:
                    file.write(data)
                return target
            except urllib.error.HTTPError as error:
                if error.code < 500 and error.code not in (408, 429):
                    logger.debug("%s: HTTP %d", url, error.code)
                    return None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                logger.debug("%s: %s", url, error)
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        return None

    def signature(self, sources: Sequence[str]) -> list:
        """What identifies a shard's image inputs: URLs, and paths with size and mtime."""
        out = []
        for source in sources:
            if _is_url(source):
                out.append(source)
            else:
                try:
                    stat = os.stat(source)
                    out.append([source, stat.st_size, stat.st_mtime_ns])
                except OSError:
                    out.append([source, None])
        return out


def encode_images(
    sources_list: Sequence[Sequence[str]],
    fetcher: ImageFetcher,
    encoder: ClipImageEncoder,
    workers: int,
) -> tuple[np.ndarray | None, list[str]]:
    """``(vectors [k, dim] | None, reasons)``; images are decoded ``batch_size`` at a time by a
    thread pool, so a shard never holds more than one batch of decoded images."""
    blocks, reasons = [], []
    step = encoder.batch_size
    with futures.ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(sources_list), step):
            loaded = list(pool.map(fetcher.load, sources_list[start : start + step]))
            images = [image for image, _ in loaded if image is not None]
            if images:
                blocks.append(encoder.encode(images))
            reasons += [reason for _, reason in loaded]
    return (np.concatenate(blocks) if blocks else None), reasons


def _is_url(reference: str) -> bool:
    return reference.startswith(("http://", "https://"))
