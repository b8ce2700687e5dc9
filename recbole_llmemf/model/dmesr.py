"""DMESR's dual-view item enhancer, and RecBole's SASRec and GRU4Rec with it.

Reference: Huang et al., "DMESR: Dual-view MLLM-based Enhancing Framework for Multimodal Sequential
Recommendation" (abstract only; no code released). An MLLM describes each item three ways (from its
image, from its text, from both: "three-way prompting", ``llmemf-data enrich``); the descriptions'
frozen vectors are aligned across modalities by a contrastive loss and fused with the item's
original title by bidirectional cross-attention; the fused vector joins the backbone's item
embedding. The backbones keep RecBole's own classes: only their ``item_embedding`` is wrapped
(the enhancer: layers.py, which LLMEMF uses too with ``item_enhancer: dmesr``).

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
from recbole.model.sequential_recommender.gru4rec import GRU4Rec
from recbole.model.sequential_recommender.sasrec import SASRec

from recbole_llmemf.model.layers import DualViewEnhancer, EnhancedItemEmbedding


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
