"""Like-for-like baselines: RecBole's cross-entropy sequential models with the softmax over the
target item's domain, as LLMEMF's own loss (Eq. 12), instead of over both domains' items.

SASRec, GRU4Rec, SRGNN and RecBole's other CE sequential models compute their loss as
``self.loss_fct(logits, pos_items)`` with ``logits`` over every item (``[B, n_items]``). Swapping
``loss_fct`` for :class:`TargetDomainCrossEntropy` keeps each model's own code: the logits of the
other domain's items are masked before the softmax, so a model is trained on the same question it
is tested on (rank within the target's domain). Enabled by ``train_in_target_domain: True``.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_llmemf.data.domains import item_domains


class TargetDomainCrossEntropy(nn.Module):
    """Cross-entropy over the items of each row's target domain only."""

    def __init__(self, item_domain: torch.Tensor):
        super().__init__()
        self.register_buffer("item_domain", item_domain, persistent=False)  # [n_items], -1 padding

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != len(self.item_domain):
            raise ValueError(
                f"train_in_target_domain needs logits over every item ({len(self.item_domain)}), "
                f"got {logits.shape[-1]} columns"
            )
        other = self.item_domain[None, :] != self.item_domain[target][:, None]  # [B n_items]
        return nn.functional.cross_entropy(logits.masked_fill(other, float("-inf")), target)


def train_in_target_domain(model: nn.Module, dataset, domain_field: str) -> None:
    """Give ``model`` (a RecBole CE sequential model) the target-domain softmax."""
    if domain_field is None:
        raise ValueError("train_in_target_domain needs a domain_field naming each item's domain")
    loss_fct = getattr(model, "loss_fct", None)
    if getattr(model, "loss_type", None) != "CE" or not isinstance(loss_fct, nn.CrossEntropyLoss):
        raise ValueError(
            f"train_in_target_domain: {type(model).__name__} has no full cross-entropy loss "
            "(loss_type: CE with nn.CrossEntropyLoss); it applies to RecBole's CE sequential models"
        )
    domain, _ = item_domains(dataset, domain_field)
    model.loss_fct = TargetDomainCrossEntropy(domain.to(next(model.parameters()).device))
