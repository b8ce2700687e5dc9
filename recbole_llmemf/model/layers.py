"""LLMEMF's building blocks: the sequence encoder and the items scored by content alone."""

from __future__ import annotations

import torch
from recbole.model.layers import TransformerEncoder
from torch import nn


class SequenceEncoder(nn.Module):
    """Positional embedding + self-attention over a batch of sequences (Eq. 2, 4)."""

    def __init__(self, config, max_seq_length: int):
        super().__init__()
        hidden_size = config["hidden_size"]
        self.position_embedding = nn.Embedding(max_seq_length, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.encoder = TransformerEncoder(
            n_layers=config["n_layers"],
            n_heads=config["n_heads"],
            hidden_size=hidden_size,
            inner_size=config["inner_size"],
            hidden_dropout_prob=config["hidden_dropout_prob"],
            attn_dropout_prob=config["attn_dropout_prob"],
            hidden_act=config["hidden_act"],
            layer_norm_eps=config["layer_norm_eps"],
        )

    def forward(
        self, item_emb: torch.Tensor, positions: torch.Tensor, attention_mask: torch.Tensor
    ):
        """``[N L H]`` embeddings, ``[N L]`` position ids, additive ``[N 1 L L]`` mask -> ``[N L H]``."""
        hidden = self.dropout(self.layer_norm(item_emb + self.position_embedding(positions)))
        return self.encoder(hidden, attention_mask, output_all_encoded_layers=False)[-1]


class ContentOnlyItems(nn.Module):
    """Items whose ID is not used: scored by their frozen content vectors alone.

    With ``content_only_below: k`` (k >= 1) these are the items without a training interaction
    (UniSRec's inductive setting: their ID embedding never met a target, only the softmax pushing
    it down) and the items with fewer than k that have a content vector (a handful of
    interactions trains the content scoring better than an ID of their own). With ``id_dropout``
    they are also, during training only, a random share of the other items as candidates, drawn
    anew at every batch (DropoutNet, Volkovs et al. 2017), so that content alone must rank them
    against items scored by ID. An item without an ID enters a sequence as one learned vector, and
    as a candidate scores ``bias + sum_m weight_m * cos_m`` over its content modalities, the bias
    and the weights learned: content carries the whole score, where a warm item's content cosine only adds
    ``alpha`` or ``beta`` times itself to its ID cosine.
    """

    def __init__(
        self,
        without_id: torch.Tensor,
        untrained: torch.Tensor,
        content_weights: dict[str, float],
        hidden_size: int,
        id_dropout: float,
    ):
        """``without_id``, ``untrained``: ``[n_items]`` bool, the items never scored by ID and
        those without a training interaction (padding in neither). ``content_weights``: per
        content modality, its weight for the other items (alpha, beta), where the learned
        weights start: at first an item without an ID scores as it would with a zero ID cosine,
        not above every item (weight 1 made the first epochs rank them first)."""
        super().__init__()
        if not 0.0 <= id_dropout < 1.0:
            raise ValueError(f"id_dropout must be in [0, 1), got {id_dropout}")
        self.id_dropout = id_dropout
        self.register_buffer("without_id", without_id, persistent=False)
        self.register_buffer("untrained", untrained, persistent=False)
        self.input_embedding = nn.Parameter(torch.zeros(hidden_size))  # in place of E_id rows
        self.bias = nn.Parameter(torch.zeros(()))
        self.content_weight = nn.ParameterDict(
            {m: nn.Parameter(torch.tensor(float(w))) for m, w in content_weights.items()}
        )

    def hidden_ids(self) -> torch.Tensor:
        """``[n_items]`` bool: the candidates scored by content in this batch (padding never)."""
        if not self.training or self.id_dropout == 0.0:
            return self.without_id
        dropped = torch.rand(self.without_id.shape, device=self.without_id.device)
        dropped = dropped < self.id_dropout
        dropped[0] = False
        return self.without_id | dropped
