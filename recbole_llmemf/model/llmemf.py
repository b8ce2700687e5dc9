"""LLM-EMF: LLM-Enhanced Multimodal Fusion for Cross-Domain Sequential Recommendation.

Reference: Wu et al., "LLM-Enhanced Multimodal Fusion for Cross-Domain Sequential Recommendation",
Expert Systems with Applications, 2026. No reference code was released; section and equation numbers
below are the paper's.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_llmemf.data.dataset import MODALITIES, load_item_matrix
from recbole_llmemf.data.domains import item_domains
from recbole_llmemf.data.training_data import NEXT_ITEMS
from recbole_llmemf.model.content_profile import ContentProfile
from recbole_llmemf.model.layers import (
    ContentOnlyItems,
    DualViewEnhancer,
    EnhancedItemEmbedding,
    SequenceEncoder,
    domain_views,
)
from recbole_llmemf.model.sampled_softmax import SampledSoftmax

MERGED = 2  # sequences are ordered X-only, Y-only, merged (§3.1)


class LLMEMF(SequentialRecommender):
    r"""LLM-EMF scores the next item from 3 sequences x 3 modalities = 9 attention representations.

    Item matrices (§3.4): a learnable ID embedding and frozen image / text vectors (CLIP; text is
    the LLM-enriched title). From the merged history the model derives the X-only and Y-only
    sub-sequences (§3.1), encodes each sequence in each modality (Eq. 2), scores items by cosine
    (Eq. 3, 5-7) and
    fuses modalities as ``P = P_id + alpha * P_img + beta * P_txt`` (Eq. 8). Training sums the
    cross-entropy of the merged, own-domain and other-domain scores (Eq. 9-10); evaluation ranks the
    target domain's items by ``P_T + lambda_S * P_S + lambda_Z * P_Z`` (Eq. 11-12).

    NOTE: departures where the paper is silent or under-specified:
        - One encoder per modality, shared by the three sequences; the X-only and Y-only sequences
          are encoded together through a domain attention mask (see layers.domain_views).
        - The frozen vectors enter through a trainable linear adaptor, and a linear head maps the
          representation back to the frozen space for the cosine (Eq. 3 compares with the frozen
          matrix itself).
        - Cosine logits are divided by ``temperature`` in the loss (UniSRec's practice); without it
          cross-entropy over cosines in [-1, 1] barely trains.
        - Losses and scores are restricted to the target item's domain (Eq. 12 ranks within T only).
        - An item without an image or text enters sequences as a learned "missing" vector and
          scores 0 for that modality; an empty sub-sequence has a zero representation (flat scores).
        - Training reads each sequence once with a target at every position (``train_per_position``,
          training_data.py): the pairs of RecBole's prefix rows, the loss their mean.
        - Off by default, beyond the paper: items without (or with few) training interactions
          scored by content alone (``content_only_below``, ``id_dropout``; layers.ContentOnlyItems),
          and DMESR's enhancer in place of the image and text adaptors (``item_enhancer``).
        - Off by default, beyond the paper: a sampled softmax over N negatives per domain with the
          logQ correction in place of the exact loss (``loss_negatives``; sampled_softmax.py).
        - On by default since issue 28, beyond the paper: in evaluation, ContentCosine's
          frozen-space score added with a scale chosen on validation (``content_profile_scales``,
          and with ``content_profile_cold_offsets`` never-trained items scored by it alone;
          content_profile.ContentProfile); learning rate 0.003. ``LLMEMF-paper`` undoes both.
    """

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.hidden_size = config["hidden_size"]  # d, width of E_id and of every encoder (§3.4)
        self.initializer_range = config["initializer_range"]
        self.image_weight = config["image_weight"]  # alpha, Eq. 8
        self.text_weight = config["text_weight"]  # beta, Eq. 8
        self.temperature = config["temperature"]
        self.own_domain_loss_weight = config["own_domain_loss_weight"]
        self.other_domain_loss_weight = config["other_domain_loss_weight"]
        self.domain_loss_weights = config["domain_loss_weights"]  # lambda_X, lambda_Y, Eq. 10
        self.eval_weight = config["eval_weight"]  # lambda (of P_S; of P_Z too), Eq. 11
        merged_weight = config["merged_eval_weight"]
        self.merged_eval_weight = self.eval_weight if merged_weight is None else merged_weight
        self.modalities = ["id"] + [m for m in MODALITIES if config[f"use_{m}"]]
        self.modality_weight = {"id": 1.0, "image": self.image_weight, "text": self.text_weight}

        item_domain, self.domain_names = item_domains(dataset, config["domain_field"])
        if len(self.domain_names) != 2:
            raise ValueError(f"LLMEMF needs exactly 2 domains, got {self.domain_names}")
        self.register_buffer("item_domain", item_domain, persistent=False)  # [n_items], pad -1
        position_in_domain = torch.full_like(item_domain, -1)  # column of each item in its domain
        for domain in range(2):
            items = torch.nonzero(item_domain == domain).squeeze(1)
            position_in_domain[items] = torch.arange(len(items))
            self.register_buffer(f"domain_{domain}_items", items, persistent=False)
        self.register_buffer("position_in_domain", position_in_domain, persistent=False)
        # sequences read per view (X and Y the domain view), and the loss terms per target domain
        self.register_buffer("view_of_sequence", torch.tensor([1, 1, 0]), persistent=False)
        loss_sequences = torch.tensor([[MERGED, 0, 1], [MERGED, 1, 0]])  # merged, own, other
        self.register_buffer("loss_sequences", loss_sequences, persistent=False)
        self._eval_item_rows = None

        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)  # E_id
        self.adaptor = nn.ModuleDict()
        self.head = nn.ModuleDict()
        self.missing_embedding = nn.ParameterDict()
        for modality in self.modalities[1:]:
            matrix, has_vector = load_item_matrix(dataset, modality)
            # Frozen CLIP matrices (§3.4 1-2): buffers, normalised once, rebuilt from the dataset on
            # reload, so they follow .to(device) yet stay out of the optimizer and the checkpoint.
            self.register_buffer(
                f"{modality}_matrix", F.normalize(matrix, dim=-1), persistent=False
            )
            self.register_buffer(f"has_{modality}", has_vector, persistent=False)
            self.adaptor[modality] = nn.Linear(matrix.shape[1], self.hidden_size)
            self.head[modality] = nn.Linear(self.hidden_size, matrix.shape[1])
            self.missing_embedding[modality] = nn.Parameter(torch.zeros(self.hidden_size))
        self.encoder = nn.ModuleDict(
            {m: SequenceEncoder(config, self.max_seq_length) for m in self.modalities}
        )
        if config["item_enhancer"] == "dmesr":  # model/dmesr.py; E_id + the fused views
            enhancer = DualViewEnhancer(config, dataset, self.hidden_size)
            self.item_embedding = EnhancedItemEmbedding(
                self.item_embedding, enhancer, config["dmesr_combine"]
            )
        self._add_options(config, dataset)
        self.apply(self._init_weights)
        for parameter in self.missing_embedding.values():
            nn.init.normal_(parameter, std=self.initializer_range)

    def _add_options(self, config, dataset) -> None:
        """Beyond the paper: items scored by content alone, the profile score (on by default) and
        the sampled loss."""
        domain_items = [getattr(self, f"domain_{domain}_items") for domain in range(2)]
        self.sampled_softmax = SampledSoftmax.from_config(config, dataset, domain_items)
        content = self.modalities[1:]
        self.content_only = ContentOnlyItems.from_config(
            config,
            dataset,
            [getattr(self, f"has_{modality}") for modality in content],
            {modality: self.modality_weight[modality] for modality in content},
            self.hidden_size,
        )
        profiled = config["content_profile_modalities"] or content  # IDs only may profile text
        if set(profiled) - set(MODALITIES):
            raise ValueError(f"content_profile_modalities: {profiled}; known: {MODALITIES}")
        read = {m: partial(self.frozen_matrix, dataset, m) for m in profiled}
        self.content_profile = ContentProfile.from_config(config, dataset, read, self.item_domain)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """The nine representations of each whole sequence.

        Returns:
            ``[3 sequences, n_modalities, B, H]``, sequences ordered X-only, Y-only, merged; an
            empty sub-sequence has a zero representation.
        """
        rows = torch.arange(len(item_seq), device=item_seq.device)
        return self.representations(item_seq, rows, item_seq_len - 1)

    def representations(
        self, item_seq: torch.Tensor, rows: torch.Tensor, steps: torch.Tensor
    ) -> torch.Tensor:
        """The nine representations of the histories ``item_seq[rows, : steps + 1]``.

        Args:
            item_seq: ``[B L]``, each sequence encoded once however many histories it gives.
            rows, steps: ``[P]``, the sequence and the last position of each history.

        Returns:
            ``[3, n_modalities, P, H]`` as :meth:`forward`.
        """
        causal_mask = self.get_attention_mask(item_seq)  # RecBole's, for the merged view
        positions, attention_mask, last = domain_views(self.item_domain, item_seq, causal_mask)
        last = last[:, rows, steps]  # [3 P]
        view = self.view_of_sequence[:, None]  # X and Y read the domain view
        reps = []
        for modality in self.modalities:
            item_emb = self.embed_items(item_seq, modality).repeat(2, 1, 1)  # merged, domain view
            output = self.encoder[modality](item_emb, positions, attention_mask)
            output = output.unflatten(0, (2, -1))  # [2 B L H]
            rep = output[view, rows[None, :], last.clamp(min=0)]  # [3 P H]
            reps.append(rep * (last >= 0).unsqueeze(-1))
        return torch.stack(reps, dim=1)  # [3 M P H]

    def frozen_matrix(self, dataset, modality: str) -> torch.Tensor:
        """The unit frozen matrix of ``modality``: the model's own, or read for the profile."""
        if modality in self.modalities:
            return getattr(self, f"{modality}_matrix")
        return F.normalize(load_item_matrix(dataset, modality)[0], dim=-1)

    def hidden_ids(self) -> torch.Tensor | None:
        """``[n_items]`` bool, the items scored by content alone now (:class:`ContentOnlyItems`)."""
        return None if self.content_only is None else self.content_only.hidden_ids()

    def embed_items(self, items: torch.Tensor, modality: str) -> torch.Tensor:
        if modality == "id":
            if self.content_only is None:
                return self.item_embedding(items)
            # items without an ID enter as one learned vector; the ID dropout of training
            # hides candidates only (DropoutNet's item side), never the history's items
            without_id = self.content_only.without_id[items].unsqueeze(-1)
            unknown = self.content_only.input_embedding
            return torch.where(without_id, unknown, self.item_embedding(items))
        vectors = self.adaptor[modality](getattr(self, f"{modality}_matrix")[items])
        has_vector = getattr(self, f"has_{modality}")[items].unsqueeze(-1)
        return torch.where(has_vector, vectors, self.missing_embedding[modality])

    def fused_queries(self, reps: torch.Tensor) -> torch.Tensor:
        """Queries whose dot product with :meth:`fused_items` is the fused cosine of Eq. 8.

        ``cos(W q + b, e) = (q . W^T e + b . e) / |W q + b|`` for a frozen modality: dividing the
        query by its norm and appending ``1 / norm`` folds the norm and the head's bias into one
        matmul over all modalities, so no score matrix is built per modality; the weights alpha and
        beta sit in the item rows. An empty sub-sequence (zero rep) scores 0 on every item in every
        modality. With :class:`ContentOnlyItems`, a last column of 1 (0 for an empty
        sub-sequence) meets their bias.

        Args:
            reps: ``[3, M, B, H]`` from :meth:`forward`.

        Returns:
            ``[3, B, K]`` with ``K = H + (M - 1) * (H + 1)``, plus 1 with content-only items.
        """
        parts = [F.normalize(reps[:, 0], dim=-1)]  # the ID modality
        for index, modality in enumerate(self.modalities[1:], start=1):
            query = reps[:, index]
            # the norm in float32: under mixed precision a float16 norm underflows to 0
            norm = self.head[modality](query).float().norm(dim=-1, keepdim=True)
            present = query.ne(0).any(dim=-1, keepdim=True)
            scale = present / norm.clamp_min(1e-12)
            parts += [scale * query, scale]
        if self.content_only is not None:
            parts.append(reps[:, 0].ne(0).any(dim=-1, keepdim=True).to(parts[0].dtype))
        return torch.cat(parts, dim=-1)

    def fused_items(
        self, items: torch.Tensor | None = None, hidden: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Item rows matching :meth:`fused_queries`: ``[n_items, K]``, or ``[B, K]`` for ``items``.

        The frozen rows are projected to the hidden width (``e W`` and ``e . b``) rather than the
        queries lifted to the frozen width: ``n_items * D * H`` against ``3 * B * D * n_items``.
        Items without a vector have zero rows, so they score 0 in that modality. The ``hidden``
        items (:meth:`hidden_ids`) have a zero ID part and their own content weights and bias.
        """
        ids = self.item_embedding.weight if items is None else self.item_embedding(items)
        parts = [F.normalize(ids, dim=-1)]
        if hidden is not None:
            hidden = (hidden if items is None else hidden[items]).unsqueeze(-1)
            parts[0] = parts[0] * ~hidden
        for modality in self.modalities[1:]:
            matrix = getattr(self, f"{modality}_matrix")
            matrix = matrix if items is None else matrix[items]
            head = self.head[modality]
            weight = self.modality_weight[modality]
            if hidden is not None:
                weight = torch.where(hidden, self.content_only.content_weight[modality], weight)
            parts += [weight * (matrix @ head.weight), weight * (matrix @ head.bias).unsqueeze(-1)]
        if hidden is not None:
            parts.append(hidden * self.content_only.bias)
        return torch.cat(parts, dim=-1)

    def scores(self, reps: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """Fused cosine scores ``P_id + alpha * P_img + beta * P_txt`` (Eq. 3, 5-8).

        Args:
            reps: ``[3, M, B, H]`` from :meth:`forward`.
            items: ``None`` to score every item, or ``[B]`` to score one item per row.

        Returns:
            ``[3, B, n_items]`` or ``[3, B]``.
        """
        queries, hidden = self.fused_queries(reps), self.hidden_ids()
        if items is None:
            return queries @ self.fused_items(hidden=hidden).T
        return (queries * self.fused_items(items, hidden)).sum(-1)

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        if NEXT_ITEMS in interaction:  # per-position rows (training_data.py), 0: no pair there
            targets = interaction[NEXT_ITEMS]  # [B L]
        else:  # one prefix row per pair, its target after the last position
            targets = torch.zeros_like(item_seq)
            rows = torch.arange(len(item_seq), device=item_seq.device)
            targets[rows, interaction[self.ITEM_SEQ_LEN] - 1] = interaction[self.POS_ITEM_ID]
        # Pairs are scored against their target's domain only (Eq. 12), which halves the logits;
        # they are gathered domain by domain, so each domain's queries are one slice.
        pairs = [torch.nonzero(self.item_domain[targets] == d, as_tuple=True) for d in range(2)]
        rows, steps = (torch.cat(index) for index in zip(*pairs))  # [P]
        hidden = self.hidden_ids()  # one draw of the ID dropout per batch
        reps = self.representations(item_seq, rows, steps)  # [3 M P H]
        queries = self.fused_queries(reps) / self.temperature  # [3 P K]
        sizes = [len(index[0]) for index in pairs]
        by_domain = queries.split(sizes, dim=1)
        summed = queries.new_zeros(3)
        term_weights = self.loss_term_weights().to(queries.device)  # [domain, term]
        all_rows = None if self.sampled_softmax else self.domain_item_rows(hidden)
        for domain in range(2):
            queries_d = by_domain[domain][self.loss_sequences[domain]]  # merged, own, other (Eq. 9)
            targets_d = targets[pairs[domain]]
            items_d = getattr(self, f"domain_{domain}_items")
            if all_rows is None:  # loss_negatives: the target in column 0, N negatives
                logits, items_d = self.sampled_softmax.logits(
                    queries_d, targets_d, items_d, domain, lambda i: self.fused_items(i, hidden)
                )
                column = torch.zeros_like(targets_d)
            else:
                logits = queries_d @ all_rows[domain].T  # [3 P_d n_d]
                column = self.position_in_domain[targets_d]
            if self.content_only is not None:  # the columns of items_d, the last ones
                logits = self.content_only.leave_out_untrained(logits, items_d)
            loss = F.cross_entropy(logits.flatten(0, 1), column.repeat(3), reduction="none")
            summed = summed + term_weights[domain] * loss.view(3, -1).sum(1)
        # a tuple, so that RecBole's trainer logs each term of Eq. 10 (weighted, mean over pairs)
        losses = tuple(summed / len(rows))
        if isinstance(self.item_embedding, EnhancedItemEmbedding):  # DMESR's alignment
            items = torch.cat([item_seq.flatten(), targets.flatten()])
            losses += (self.item_embedding.enhancer.alignment_loss(items),)
        return losses

    def loss_term_weights(self) -> torch.Tensor:
        """``[target domain, (merged, own, other)]`` weights of Eq. 10's terms: by the sequence's
        relation to the target (default), or by its domain (``domain_loss_weights``: lambda_X
        weights the X-only sequence whatever the target's domain). Same at 1 and 1."""
        if self.domain_loss_weights is None:
            own, other = self.own_domain_loss_weight, self.other_domain_loss_weight
            return torch.tensor([[1.0, own, other]] * 2)
        x, y = self.domain_loss_weights
        return torch.tensor([[1.0, x, y], [1.0, y, x]])

    def fuse_for_target(self, scores: torch.Tensor, target_domain: torch.Tensor) -> torch.Tensor:
        """Eq. 11: ``P_T + lambda_S * P_S + lambda_Z * P_Z``, with T the target domain and S the
        other one; lambda_S is ``eval_weight``, lambda_Z ``merged_eval_weight`` (default: the same).

        Linear in the scores, so it applies to :meth:`fused_queries` as well.
        """
        rows = torch.arange(scores.shape[1], device=scores.device)
        own, other = scores[target_domain, rows], scores[1 - target_domain, rows]
        return own + self.eval_weight * other + self.merged_eval_weight * scores[MERGED]

    def domain_item_rows(self, hidden: torch.Tensor | None = None) -> list[torch.Tensor]:
        """:meth:`fused_items` of each domain's items, ``[n_d, K]`` per domain.

        While evaluating they are computed once per set of weights. The cache is keyed on each
        parameter's storage and version counter: every in-place update (optimizer step,
        ``load_state_dict``) bumps the version and ``.to(device)`` moves the storage, so it cannot
        go stale.
        """
        if self.training or torch.is_grad_enabled():
            return self._split_by_domain(self.fused_items(hidden=hidden))
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if self._eval_item_rows is None or self._eval_item_rows[0] != key:
            self._eval_item_rows = (key, self._split_by_domain(self.fused_items(hidden=hidden)))
        return self._eval_item_rows[1]

    def _split_by_domain(self, item_rows: torch.Tensor) -> list[torch.Tensor]:
        return [item_rows[getattr(self, f"domain_{domain}_items")] for domain in range(2)]

    def predict(self, interaction):
        """Score of each row's candidate item, ranked as if the candidate's domain were the target."""
        items = interaction[self.ITEM_ID]
        if self.content_profile is not None and self.content_profile.mixture:
            # normalised over the domain's items: the item's score in its full ranking
            return self.full_sort_predict(interaction)[torch.arange(len(items)), items]
        reps = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        domain = self.item_domain[items]
        scores = self.fuse_for_target(self.scores(reps, items), domain)  # [B]
        if self.content_profile is None:
            return scores
        item_seq = interaction[self.ITEM_SEQ]
        return self.content_profile(scores, item_seq, items, domain, pairwise=True)

    def full_sort_predict(self, interaction):
        reps = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        target_domain = self.item_domain[interaction[self.ITEM_ID]]  # [B], from the row's target
        query = self.fuse_for_target(self.fused_queries(reps), target_domain)  # [B K]
        scores = query.new_empty(len(query), self.n_items)
        # Each row is scored against its target domain's items only, -inf elsewhere (Eq. 12).
        for domain, item_rows in enumerate(self.domain_item_rows(self.hidden_ids())):
            rows = torch.nonzero(target_domain == domain).squeeze(1)
            items = getattr(self, f"domain_{domain}_items")
            in_domain = query[rows] @ item_rows.T  # [B_d n_d]
            if self.content_profile is not None:
                item_seq = interaction[self.ITEM_SEQ][rows]
                in_domain = self.content_profile(in_domain, item_seq, items, domain)
            block = in_domain.new_full((len(rows), self.n_items), float("-inf"))
            block.index_copy_(1, items, in_domain)
            if len(rows) == len(query):  # the domain-aware trainer evaluates one domain at a time
                return block
            scores.index_copy_(0, rows, block)
        return scores
