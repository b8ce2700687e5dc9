"""Building blocks: LLMEMF's sequence encoder, items scored by content alone, and DMESR's
dual-view item enhancer (its choices: model/dmesr.py). The content profile: content_profile.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.model.layers import TransformerEncoder
from torch import nn

from recbole_llmemf.data.dataset import load_item_matrix
from recbole_llmemf.data.training_data import training_target_counts


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


def domain_views(
    item_domain: torch.Tensor, item_seq: torch.Tensor, causal_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Position ids, attention masks and, per position, where each sequence's output is read.

    The X-only and Y-only sequences (§3.1) are not packed into tensors of their own: in one
    "domain" view of the merged sequence, each item attends only to earlier items of its own
    domain and takes its rank within that domain as position. Every layer works per item apart
    from attention, so the output at the last X item up to position t equals the encoding of
    the X-only sequence of the history up to t, and X and Y share one encoder call: 6 encoder
    passes for the 9 representations, not 9. Both views are causal, so position t sees the
    items up to t only, as the prefix ending at t would.

    Args:
        item_domain: ``[n_items]``, each item's domain index, -1 on padding.
        item_seq: ``[B L]`` merged sequences.
        causal_mask: ``[B 1 L L]``, the merged view's mask (RecBole's ``get_attention_mask``).

    Returns:
        ``positions [2B L]``, ``attention_mask [2B 1 L L]`` (merged view first, then the domain
        view) and ``last [3 B L]``: for the history up to each position t, the position of its
        last X item, its last Y item (-1 where it has none) and of its last item, t.
    """
    domain = item_domain[item_seq]  # [B L], -1 on padding
    steps = torch.arange(item_seq.size(1), device=item_seq.device)
    same_domain = domain.unsqueeze(2) == domain.unsqueeze(1)  # [B L L]
    causal = steps.unsqueeze(1) >= steps.unsqueeze(0)  # [L L]
    domain_mask = same_domain & causal & (domain >= 0).unsqueeze(1)
    domain_mask = torch.where(domain_mask, 0.0, -10000.0).unsqueeze(1)  # RecBole's convention
    one_hot = F.one_hot(domain.clamp(min=0), 2) * (domain >= 0).unsqueeze(-1)  # [B L 2]
    rank = (one_hot.cumsum(1) * one_hot).sum(-1) - 1  # position within the own domain
    positions = torch.cat([steps.expand_as(item_seq), rank.clamp(min=0)])
    attention_mask = torch.cat([causal_mask, domain_mask])
    in_domain = torch.where(one_hot.bool(), steps[None, :, None], -1)  # [B L 2]
    last_in_domain = in_domain.cummax(1).values.permute(2, 0, 1)  # [2 B L]
    last = torch.cat([last_in_domain, steps.expand_as(item_seq).unsqueeze(0)])
    return positions, attention_mask, last


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

    @classmethod
    def from_config(
        cls,
        config,
        dataset,
        has_vectors: list[torch.Tensor],
        content_weights: dict[str, float],
        hidden_size: int,
    ) -> ContentOnlyItems | None:
        """The items of ``content_only_below`` and ``id_dropout``; None where both are off.

        ``dataset``: the training split (RecBole builds the model on it); ``has_vectors``: per
        content modality, ``[n_items]`` bool.
        """
        below, id_dropout = config["content_only_below"] or 0, config["id_dropout"] or 0.0
        if below < 0:
            raise ValueError(f"content_only_below must be 0 or more, got {below}")
        if below == 0 and id_dropout == 0.0:
            return None
        counts = training_target_counts(dataset)
        has_content = torch.zeros_like(counts, dtype=torch.bool)
        for has_vector in has_vectors:
            has_content |= has_vector
        untrained = (counts == 0) & (below > 0)
        untrained[0] = False  # padding
        without_id = untrained | ((counts < below) & has_content)
        return cls(without_id, untrained, content_weights, hidden_size, id_dropout)

    def leave_out_untrained(self, logits: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Items never trained on are no negatives either (``logits``' last axis: ``items``): as
        one, a content-only item would only learn that having no interactions means never being
        the target, a fact of the split. Columns before the last ``len(items)`` (a sampled
        softmax's target column) are kept."""
        untrained = self.untrained[items]
        untrained = F.pad(untrained, (logits.shape[-1] - len(items), 0))
        return logits.masked_fill(untrained, float("-inf"))

    def hidden_ids(self) -> torch.Tensor:
        """``[n_items]`` bool: the candidates scored by content in this batch (padding never)."""
        if not self.training or self.id_dropout == 0.0:
            return self.without_id
        dropped = torch.rand(self.without_id.shape, device=self.without_id.device)
        dropped = dropped < self.id_dropout
        dropped[0] = False
        return self.without_id | dropped


LLM_VIEWS = ("llm_image", "llm_text", "llm_both")
ALIGNED = ("llm_image", "llm_text")  # the two modalities the contrastive loss aligns


class DualViewEnhancer(nn.Module):
    """Per item, one vector from its frozen views: aligned LLM views fused with its title."""

    def __init__(self, config, dataset, width: int):
        super().__init__()
        self.views = list(config["dmesr_views"])
        self.llm_views = [view for view in LLM_VIEWS if view in self.views]
        # cross-attention needs both sides; without it, the views are averaged
        self.use_title = bool("title" in self.views and self.llm_views and config["dmesr_fusion"])
        if not self.views:
            raise ValueError("dmesr_views names no view")
        self.align_weight = config["dmesr_align_weight"] if set(ALIGNED) <= set(self.views) else 0
        self.align_temperature = config["dmesr_align_temperature"]
        self.project = nn.ModuleDict()
        for view in self.views:
            matrix, has_vector = load_item_matrix(dataset, view)
            self.register_buffer(f"{view}_matrix", matrix, persistent=False)
            self.register_buffer(f"has_{view}", has_vector, persistent=False)
            self.project[view] = nn.Linear(matrix.shape[1], width)
        heads = config["dmesr_heads"]
        self.coarse_to_fine = nn.MultiheadAttention(width, heads, batch_first=True)
        self.fine_to_coarse = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(2 * width if self.use_title else width, width)

    def projected(self, view: str, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[..., H]`` projections of the view's vectors (0 where missing), and the mask."""
        has = getattr(self, f"has_{view}")[items]
        vectors = self.project[view](getattr(self, f"{view}_matrix")[items])
        return vectors * has.unsqueeze(-1), has

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """``[N, H]`` fused vectors of ``items [N]``; 0 for an item without any view."""
        coarse = [self.projected(view, items) for view in self.llm_views]
        fine = self.projected("title", items) if "title" in self.views else None
        if not self.use_title:  # no fusion: the mean of whatever views the item has
            views = coarse + ([fine] if fine is not None else [])
            tokens, present = (torch.stack(parts, dim=1) for parts in zip(*views))
            return self.out(_masked_mean(tokens, present)) * present.any(1, keepdim=True)
        tokens, present = (torch.stack(parts, dim=1) for parts in zip(*coarse))  # [N V H], [N V]
        title, has_title = fine[0].unsqueeze(1), fine[1].unsqueeze(1)  # [N 1 H], [N 1]
        from_title, _ = self.coarse_to_fine(tokens, title, title, need_weights=False)
        tokens = self.norm(tokens + from_title * has_title.unsqueeze(-1))
        # an item without LLM views attends to its zero tokens (an all-masked row gives NaN);
        # its output is masked
        has_llm = present.any(1, keepdim=True)
        unmasked = torch.where(has_llm, ~present, False)
        from_llm, _ = self.fine_to_coarse(title, tokens, tokens, key_padding_mask=unmasked)
        title = self.norm(title + from_llm * has_llm.unsqueeze(-1)).squeeze(1)
        pooled = torch.cat([_masked_mean(tokens, present), title * has_title], dim=-1)
        return self.out(pooled) * (has_llm | has_title)

    def alignment_loss(self, items: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE between the items' image-side and text-side LLM views (weighted)."""
        if not self.align_weight:
            return torch.zeros((), device=items.device)
        items = torch.unique(items[items > 0])
        both = self.has_llm_image[items] & self.has_llm_text[items]
        items = items[both]
        if len(items) < 2:
            return torch.zeros((), device=items.device)
        image = F.normalize(self.projected("llm_image", items)[0], dim=-1)
        text = F.normalize(self.projected("llm_text", items)[0], dim=-1)
        logits = image @ text.T / self.align_temperature
        labels = torch.arange(len(items), device=items.device)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        return self.align_weight * loss


def _masked_mean(tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """``[N V H]`` tokens averaged over the present ones ``[N V]`` (0 where none is)."""
    total = (tokens * present.unsqueeze(-1)).sum(1)
    return total / present.sum(1, keepdim=True).clamp(min=1)


class EnhancedItemEmbedding(nn.Module):
    """Stands in for a backbone's ``nn.Embedding``: ``(items)`` and ``.weight`` give the ID
    embedding combined with the enhancer's vector, so the backbone's code runs unchanged."""

    def __init__(self, embedding: nn.Embedding, enhancer: DualViewEnhancer, combine: str):
        super().__init__()
        if combine not in ("add", "gate"):
            raise ValueError(f"dmesr_combine must be 'add' or 'gate', got {combine!r}")
        self.embedding, self.enhancer, self.combine = embedding, enhancer, combine
        self.embedding_dim = embedding.embedding_dim
        self.gate = nn.Linear(2 * self.embedding_dim, 1) if combine == "gate" else None
        self._cached: tuple | None = None

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        flat = items.reshape(-1)
        combined = self._combine(self.embedding(flat), self.enhancer(flat))
        return combined.view(*items.shape, -1)

    @property
    def weight(self) -> torch.Tensor:
        """Every item's row; while evaluating, computed once per set of weights (the key: each
        parameter's storage and version, which every in-place update bumps), not per batch."""
        if self.training or torch.is_grad_enabled():
            return self._all_rows()
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self._all_rows())
        return self._cached[1]

    def _all_rows(self) -> torch.Tensor:
        items = torch.arange(self.embedding.num_embeddings, device=self.embedding.weight.device)
        return self._combine(self.embedding.weight, self.enhancer(items))

    def _combine(self, ids: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return ids + fused
        gate = torch.sigmoid(self.gate(torch.cat([ids, fused], dim=-1)))
        return gate * ids + (1 - gate) * fused
