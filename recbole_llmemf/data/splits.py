"""What the plugin adds to RecBole's built splits (``Dataset.build``), for every model alike.

- General models train on every history pair too (:mod:`recbole_llmemf.data.general_train`).
- Under full ranking (``eval_args.mode: full``), each evaluation split remembers every item each
  user had in the splits before it (``earlier_items``: train for valid; train and valid for
  test), from targets and history lists.
  Full ranking hides those items for every model (``trainer/domain_aware.py``). RecBole hides a
  general model's training items but nothing of a sequential model's, whose case holds only its
  last ``MAX_ITEM_LIST_LENGTH`` items: with longer histories the two saw different catalogs.

Enabled when the config uses the plugin's options (``domain_field`` or ``protocol``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch

from recbole_llmemf.data.general_train import train_on_histories_too
from recbole_llmemf.utils.options import plugin_options_on


def build_splits(build: Callable, dataset) -> list:
    """Wraps ``Dataset.build``; see the module docstring."""
    built = train_on_histories_too(build, dataset)
    config = dataset.config
    modes = (config["eval_args"] or {}).get("mode") or {}
    full = "full" in (modes.values() if isinstance(modes, dict) else [modes])
    if plugin_options_on(config) and full and len(built) == 3:  # sampled: never a full ranking
        for position in (1, 2):
            earlier = interacted_items(built[:position])
            built[position].earlier_items = padded(earlier, dataset.user_num)
    return built


def interacted_items(parts) -> dict[int, set[int]]:
    """Every item id each user id touched in ``parts``, as target or in a history list."""
    items = defaultdict(set)
    for part in parts:
        users = part.inter_feat[part.uid_field].tolist()
        for user, item in zip(users, part.inter_feat[part.iid_field].tolist()):
            items[user].add(item)
        list_field = part.iid_field + part.config["LIST_SUFFIX"]
        if list_field in part.inter_feat:
            for user, history in zip(users, part.inter_feat[list_field].tolist()):
                items[user].update(history)
    for user_items in items.values():
        user_items.discard(0)
    return items


def padded(items: dict[int, set[int]], n_users: int) -> torch.Tensor:
    """``[n_users, most items]`` item ids per user id, padded with 0 (RecBole's padding id)."""
    rows = torch.zeros((n_users, max(map(len, items.values()), default=0)), dtype=torch.long)
    for user, user_items in items.items():
        rows[user, : len(user_items)] = torch.tensor(sorted(user_items))
    return rows
