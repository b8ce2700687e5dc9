"""Model names: the plugin's and RecBole's, and a real message for an unknown one (RecBole's
``get_model`` reports "No module named 'lightgbm'", utils.py L84)."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from pathlib import Path

import recbole

from recbole_llmemf.trainer.observer import current

OUR_MODELS = {
    "LLMEMF": "recbole_llmemf.model.llmemf",
    "ContentCosine": "recbole_llmemf.model.content_cosine",
    "SASRecDMESR": "recbole_llmemf.model.dmesr",
    "GRU4RecDMESR": "recbole_llmemf.model.dmesr",
}
_RECBOLE_FAMILIES = ["general", "context_aware", "sequential", "knowledge_aware"]


def explain_unknown_model(get_model: Callable, model_name: str):
    known = known_models()
    if model_name not in known:
        close = difflib.get_close_matches(model_name, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model '{model_name}'.{hint} Known models: {', '.join(sorted(known))}."
        )
    observer = current()
    if observer is not None:  # the benchmark times the model's construction
        observer.model_requested()
    return get_model(model_name)


@functools.lru_cache(maxsize=1)
def known_models() -> tuple[str, ...]:
    """Class names of RecBole's models (read from its source, so nothing is imported) and ours."""
    names = set(OUR_MODELS)
    model_dir = Path(recbole.__file__).parent / "model"
    for family in _RECBOLE_FAMILIES:
        for path in (model_dir / f"{family}_recommender").glob("*.py"):
            classes = re.findall(r"^class (\w+)\(", path.read_text(encoding="utf-8"), re.M)
            names.update(c for c in classes if c.lower() == path.stem)
    return tuple(sorted(names))
