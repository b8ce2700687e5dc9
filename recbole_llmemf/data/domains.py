"""Which domain each item belongs to, read from the dataset's item field (``domain`` by default)."""

from __future__ import annotations

import torch
from recbole.data.dataset import Dataset


def item_domains(dataset: Dataset, domain_field: str) -> tuple[torch.Tensor, list[str]]:
    """Domain index of every item id and the domain names.

    Returns:
        ``(domain, names)``: ``domain`` is a LongTensor ``[n_items]`` with values in
        ``0 .. len(names) - 1`` and ``-1`` for the padding id 0; ``names[k]`` is domain k's token.
    """
    if dataset.item_feat is None or domain_field not in dataset.item_feat:
        raise ValueError(
            f"Dataset '{dataset.dataset_name}' has no item field '{domain_field}'. Cross-domain "
            f"evaluation needs <dataset>.item with a '{domain_field}:token' column and "
            f"load_col: {{item: [item_id, {domain_field}]}}."
        )
    domain = dataset.item_feat[domain_field].long() - 1  # RecBole's token id 0 is [PAD]
    names = [str(name) for name in dataset.field2id_token[domain_field][1:]]
    missing = torch.nonzero(domain[1:] < 0).flatten() + 1
    if len(missing):
        tokens = dataset.id2token(dataset.iid_field, missing[:5].numpy())
        raise ValueError(
            f"{len(missing)} items of '{dataset.dataset_name}' have no '{domain_field}' "
            f"(for example {', '.join(map(str, tokens))}); every item needs a domain."
        )
    return domain, names
