"""ContentCosine: what an item's content alone says about the next item, with no training.

A candidate scores the cosine between its frozen content vector and the mean content vector of the
history's items that have one, summed over the modalities in use (``use_image``, ``use_text``). An
item without a vector scores 0 in that modality, and a history without any scores every item 0, so
the tie rule of the evaluation ranks it at random. With ``content_profile_history: domain``, the
mean of the history's items of the target's domain only (the whole history's where it has none).
It is the row that tells, in every benchmark table, how far content carries the ranking by itself,
above all for items the IDs know nothing of.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_llmemf.data.dataset import MODALITIES, load_item_matrix
from recbole_llmemf.data.domains import item_domains
from recbole_llmemf.model.content_profile import (
    domain_history,
    history_profiles,
    of_domain_history,
    profile_cosines,
)


class ContentCosine(SequentialRecommender):
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.modalities = [m for m in MODALITIES if config[f"use_{m}"]]
        if not self.modalities:
            raise ValueError("ContentCosine needs a content modality: use_image or use_text")
        for modality in self.modalities:
            matrix, _ = load_item_matrix(dataset, modality)  # zero rows: no vector
            self.register_buffer(
                f"{modality}_matrix", F.normalize(matrix, dim=-1), persistent=False
            )
        item_domain = None
        if of_domain_history(config):  # the profile of the target domain's history items
            item_domain, _ = item_domains(dataset, config["domain_field"])
        self.register_buffer("item_domain", item_domain, persistent=False)
        # RecBole's optimizer needs a parameter; there is nothing to learn (as in its ItemKNN)
        self.fake_loss = nn.Parameter(torch.zeros(1))

    def matrices(self) -> dict[str, torch.Tensor]:
        return {m: getattr(self, f"{m}_matrix") for m in self.modalities}

    def profiles(self, interaction) -> list[torch.Tensor]:
        """The history's profile per modality; with ``content_profile_history: domain``, of the
        items of the row's item's domain (the target's, as the domain-aware evaluation ranks)."""
        item_seq, items = interaction[self.ITEM_SEQ], interaction[self.ITEM_ID]
        target_domain = None if self.item_domain is None else self.item_domain[items]
        keep = domain_history(self.item_domain, item_seq, target_domain)
        return history_profiles(self.matrices(), item_seq, keep)

    def calculate_loss(self, interaction):
        return self.fake_loss

    def predict(self, interaction):
        items = interaction[self.ITEM_ID]
        return profile_cosines(self.profiles(interaction), self.matrices(), items, pairwise=True)

    def full_sort_predict(self, interaction):
        return profile_cosines(self.profiles(interaction), self.matrices())
