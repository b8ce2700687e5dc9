"""General models (BPR, ItemKNN, Pop, ...) train on every interaction the sequential models see.

On benchmark split files (one row per prediction case: user, ``item_id_list`` history, target),
RecBole trains a general model on the (user, target) pairs of the train rows only. A user's first
item is a history item of every row and the target of none, so it never reaches BPR or ItemKNN,
while every sequential model reads it (about one interaction in ten on the C2DSR splits). The
hook adds each (user, item) pair that any row's history holds (train, valid and test rows alike)
to the general model's training data, once per pair, unless that pair is a valid or test target.

Enabled for general and traditional models on datasets with ``benchmark_filename`` and an item
list field, when the config uses the plugin's options (``domain_field`` or ``protocol``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from recbole.data.interaction import Interaction, cat_interactions
from recbole.utils import ModelType

from recbole_llmemf.utils.options import plugin_options_on

logger = logging.getLogger(__name__)


def train_on_histories_too(build: Callable, dataset) -> list:
    """Wraps ``Dataset.build``: the train part gains the history pairs of every split file."""
    built = build(dataset)
    config = dataset.config
    list_field = dataset.iid_field + config["LIST_SUFFIX"]
    if (
        config["MODEL_TYPE"] not in (ModelType.GENERAL, ModelType.TRADITIONAL)
        or config["benchmark_filename"] is None
        or list_field not in dataset.inter_feat
        or not plugin_options_on(config)
    ):
        return built
    train = built[0]
    users, items = history_pairs(built, train, list_field)
    rows = {
        name: torch.zeros((len(users), *values.shape[1:]), dtype=values.dtype)
        for name, values in train.inter_feat.interaction.items()
    }
    rows[dataset.uid_field], rows[dataset.iid_field] = users, items
    logger.info(
        f"general model: {len(train.inter_feat)} train targets + {len(users)} history "
        "interactions that are no target of a train row"
    )
    return [train.copy(cat_interactions([train.inter_feat, Interaction(rows)])), *built[1:]]


def history_pairs(built: list, train, list_field: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(user ids, item ids) of history pairs that are neither a train target nor an eval target."""
    uid, iid = train.uid_field, train.iid_field
    n_items = train.item_num

    def keys(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return users * n_items + items

    histories = [
        keys(part.inter_feat[uid][:, None], part.inter_feat[list_field])[
            part.inter_feat[list_field] > 0  # 0 is the padding id
        ]
        for part in built
    ]
    targets = [keys(part.inter_feat[uid], part.inter_feat[iid]) for part in built]
    candidates = torch.unique(torch.cat(histories))
    known = torch.cat(targets)  # train targets are there already; eval targets must stay unseen
    added = candidates[~torch.isin(candidates, known)]
    return added // n_items, added % n_items
