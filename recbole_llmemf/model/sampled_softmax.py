"""An opt-in sampled softmax for LLMEMF's loss (``loss_negatives: N``), for large catalogs.

The paper's loss (Eq. 9) is a cross-entropy over every item of the target's domain; its cost grows
with the catalog (benchmarks/README.md: 3.49x SASRec's epoch on 100,800 items). Here each batch
draws ``N`` negatives per domain, shared by all its pairs, from ``q`` proportional to
``(training count + 1) ** 0.75`` (word2vec's smoothing: popular items, the hard negatives, more
often; every item sometimes). A negative's logit is corrected by ``-log(N q_j)`` (logQ: Bengio &
Senecal 2008; Yi et al. 2019), the target's logit is exact, and a draw of the target itself is no
negative. Then ``exp(s_t) + sum_j exp(s_j) / (N q_j)`` is an unbiased estimate of the softmax's
denominator, and the loss's gradient tends to the exact one as ``N`` grows
(tests/test_sampled_softmax.py). A departure from the paper, off by default.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from recbole_llmemf.data.training_data import training_target_counts

SMOOTHING = 0.75


class SampledSoftmax(nn.Module):
    def __init__(self, n_negatives: int, domain_items: list[torch.Tensor], counts: torch.Tensor):
        super().__init__()
        if n_negatives < 1:
            raise ValueError(
                f"loss_negatives must be a positive number of negatives, got {n_negatives}"
            )
        self.n_negatives = n_negatives
        for domain, items in enumerate(domain_items):
            weight = (counts[items].double() + 1) ** SMOOTHING
            self.register_buffer(f"q_{domain}", (weight / weight.sum()).float(), persistent=False)

    @classmethod
    def from_config(
        cls, config, dataset, domain_items: list[torch.Tensor]
    ) -> SampledSoftmax | None:
        """``None`` unless ``loss_negatives`` is set."""
        if not config["loss_negatives"]:
            return None
        return cls(int(config["loss_negatives"]), domain_items, training_target_counts(dataset))

    def logits(
        self,
        queries: torch.Tensor,
        targets: torch.Tensor,
        domain_items: torch.Tensor,
        domain: int,
        item_rows: Callable[[torch.Tensor], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[S P 1+N]`` logits, the target's in column 0, and the ``[N]`` negatives' item ids.

        ``queries``: ``[S P K]`` for ``P`` pairs of ``domain`` (``targets``: their item ids);
        ``item_rows(items)``: the fused rows ``[len(items), K]`` of those items only.
        """
        q = getattr(self, f"q_{domain}")
        drawn = torch.multinomial(q, self.n_negatives, replacement=True)
        negatives = domain_items[drawn]
        rows = item_rows(torch.cat([targets, negatives]))
        positive = (queries * rows[: len(targets)]).sum(-1, keepdim=True)  # [S P 1]
        negative = queries @ rows[len(targets) :].T - torch.log(self.n_negatives * q[drawn])
        hits = negatives[None, :] == targets[:, None]  # [P N]: the target is no negative
        negative = negative.masked_fill(hits, float("-inf"))
        return torch.cat([positive, negative], dim=-1), negatives
