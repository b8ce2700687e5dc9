"""DMESR's dual-view item enhancer, and RecBole's SASRec and GRU4Rec with it.

Reference: Huang et al., "DMESR: Dual-view MLLM-based Enhancing Framework for Multimodal Sequential
Recommendation" (abstract only; no code released). An MLLM describes each item three ways (from its
image, from its text, from both: "three-way prompting", ``llmemf-data enrich``); the descriptions'
frozen vectors are aligned across modalities by a contrastive loss and fused with the item's
original title by bidirectional cross-attention; the fused vector joins the backbone's item
embedding. The backbones keep RecBole's own classes: only their ``item_embedding`` is wrapped.

NOTE: choices where the abstract is silent:
    - Views are frozen item vectors read as atomic feature files (``dmesr_views``: name -> file
      suffix): ``llm_image``, ``llm_text``, ``llm_both`` (the MLLM's descriptions) and ``title``.
      A view an item lacks is masked; an item with no view at all adds nothing to its ID.
    - Alignment: symmetric InfoNCE between the projected ``llm_image`` and ``llm_text`` vectors of
      the items of a training batch that have both, temperature ``dmesr_align_temperature``,
      weighted by ``dmesr_align_weight`` and added to the backbone's loss.
    - Fusion (``dmesr_fusion``): the coarse side is the set of the item's projected LLM views, the
      fine side its projected title. Each side attends over the other (one multi-head attention per direction,
      residual and layer norm); the fused vector is a linear map of the mean of the coarse side's
      outputs and the fine side's output. With one title vector, the coarse-to-fine direction is
      a learned transform of the title added to every LLM view. Without fusion (the ablation), or
      with one side only, the fused vector is a linear map of the mean of the item's views.
    - Combination with the ID embedding (``dmesr_combine``): ``add`` (e_id + fused) or ``gate``
      (g * e_id + (1 - g) * fused, g a sigmoid of a linear map of both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.model.sequential_recommender.gru4rec import GRU4Rec
from recbole.model.sequential_recommender.sasrec import SASRec
from torch import nn

from recbole_llmemf.data.dataset import load_item_matrix

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

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        flat = items.reshape(-1)
        combined = self._combine(self.embedding(flat), self.enhancer(flat))
        return combined.view(*items.shape, -1)

    @property
    def weight(self) -> torch.Tensor:
        items = torch.arange(self.embedding.num_embeddings, device=self.embedding.weight.device)
        return self._combine(self.embedding.weight, self.enhancer(items))

    def _combine(self, ids: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return ids + fused
        gate = torch.sigmoid(self.gate(torch.cat([ids, fused], dim=-1)))
        return gate * ids + (1 - gate) * fused


class DMESRBackbone:
    """Mixin for a RecBole sequential model: its ``item_embedding`` enhanced, the alignment loss
    added to its own."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        embedding = self.item_embedding
        enhancer = DualViewEnhancer(config, dataset, embedding.embedding_dim)
        enhancer.apply(self._init_weights)
        self.item_embedding = EnhancedItemEmbedding(embedding, enhancer, config["dmesr_combine"])

    def calculate_loss(self, interaction):
        loss = super().calculate_loss(interaction)
        items = torch.cat([interaction[self.ITEM_SEQ].flatten(), interaction[self.POS_ITEM_ID]])
        return loss + self.item_embedding.enhancer.alignment_loss(items)


class SASRecDMESR(DMESRBackbone, SASRec):
    """RecBole's SASRec with DMESR's enhanced item embedding (benchmark label ``SASRec+DMESR``)."""

    recbole_backbone, enhancer_name = "SASRec", "DMESR"  # yaml: SASRec's, then DMESR.yaml


class GRU4RecDMESR(DMESRBackbone, GRU4Rec):
    """RecBole's GRU4Rec with DMESR's enhanced item embedding (``GRU4Rec+DMESR``)."""

    recbole_backbone, enhancer_name = "GRU4Rec", "DMESR"
