"""The content profile: ContentCosine's training-free score (the cosine in the frozen space between
a candidate's vector and the mean vector of the history's items), and its use inside LLMEMF's
evaluation (``content_profile_scales``, ``content_profile_cold_offsets``,
``content_profile_cold_temperatures``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from recbole_llmemf.data.training_data import training_target_counts


def history_profiles(
    matrices: dict[str, torch.Tensor], item_seq: torch.Tensor, keep: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Per modality of ``matrices`` (unit frozen rows, zero where an item has no vector), the unit
    mean vector of each history of ``item_seq [B L]``: ``[B, D_m]``. Padding and items without a
    vector add nothing; a history without any vector has a zero profile, which scores 0 on every
    item (ContentCosine's scorer). With ``keep`` (``[B L]`` bool), the mean of the kept items, and
    the whole history's where a row keeps none with a vector."""
    profiles = []
    for matrix in matrices.values():
        rows = matrix[item_seq]
        profile = F.normalize(rows.sum(dim=1), dim=-1)
        if keep is not None:
            kept = F.normalize((rows * keep.unsqueeze(-1)).sum(dim=1), dim=-1)
            profile = torch.where(kept.ne(0).any(-1, keepdim=True), kept, profile)
        profiles.append(profile)
    return profiles


def of_domain_history(config) -> bool:
    """``content_profile_history``: ``all`` (the whole history, ContentCosine's scorer as the
    issue defined it) or ``domain`` (the target domain's items)."""
    history = config["content_profile_history"] or "all"
    if history not in ("all", "domain"):
        raise ValueError(f"content_profile_history: {history!r}; one of 'all', 'domain'")
    return history == "domain"


def domain_history(
    item_domain: torch.Tensor | None, item_seq: torch.Tensor, domain
) -> torch.Tensor | None:
    """``[B L]``: the history items of the target ``domain`` (an index, or ``[B]``), the ``keep`` of
    :func:`history_profiles` for ``content_profile_history: domain``; None (the whole history)
    without ``item_domain``."""
    if item_domain is None:
        return None
    target = torch.as_tensor(domain, device=item_seq.device).view(-1, 1)
    return item_domain[item_seq] == target


def profile_cosines(
    profiles: list[torch.Tensor],
    matrices: dict[str, torch.Tensor],
    items: torch.Tensor | None = None,
    pairwise: bool = False,
) -> torch.Tensor:
    """``sum_m cos(profile_m, e_m)`` over the modalities of ``matrices``: ``[B, n_items]`` for every
    item, ``[B, len(items)]`` for ``items``, or ``[B]`` with ``pairwise`` (one item per row)."""
    total = 0.0
    for matrix, profile in zip(matrices.values(), profiles):
        vectors = (matrix if items is None else matrix[items]).to(profile.dtype)
        total = total + ((profile * vectors).sum(-1) if pairwise else profile @ vectors.T)
    return total


class ContentProfile(nn.Module):
    """ContentCosine's score inside LLMEMF's evaluation (``content_profile_scales``): the cosine in
    the frozen space between a candidate's vector and the unit mean vector of the history's items,
    summed over the content modalities, times ``scale`` per target domain, chosen on the
    validation set (trainer/profile_choice.py).

    The projected cosines of Eq. 3 compare a learned summary of the history with a learned head,
    both fit on training targets, the frequent items above all; this score needs no training to
    rank an item the IDs know little of. It is left out of training: there, with any weight, it
    slowed LLMEMF's learning (demo validation 0.31 after 15 epochs against 0.37), and a learned
    weight fell from 1.0 to 0.37 in the first Food-Kitchen epoch while validation asked for 4 to 8
    times that: training targets follow the training popularity, held-out targets do not.

    With ``cold_items`` (``content_profile_cold_offsets``), an item that was never a training
    target scores ``cold_scale * cosine + cold_offset`` in place of the model's score: its ID
    embedding met no target, so the model's score of it is noise, and the offset sets how its
    content-only score stands against the trained items' scores.
    """

    def __init__(
        self,
        matrices: dict[str, torch.Tensor],
        n_domains: int,
        cold_items: torch.Tensor | None = None,
        mixture: bool = False,
        cold_tolerance: float = 0.0,
        item_domain: torch.Tensor | None = None,
    ):
        """``matrices``: unit frozen rows per modality (the model's own tensors, not copied, or
        loaded for the profile alone when the model does not encode that modality).
        ``cold_items``: ``[n_items]`` bool, the items scored by content alone; None: none.
        ``mixture``: the two kinds of item as two experts (``content_profile_cold_temperatures``).
        ``cold_tolerance``: how the trainer chooses the settings (``content_profile_cold_tolerance``).
        ``item_domain``: ``[n_items]``, for a profile of the target domain's history items only
        (``content_profile_history: domain``); None: of the whole history."""
        super().__init__()
        self.modalities = list(matrices)
        for modality, matrix in matrices.items():
            self.register_buffer(f"{modality}_matrix", matrix, persistent=False)
        # The model's own scores (the paper's) until a validation chooses the settings: the
        # never-trained items' settings have no value that leaves the scores as they are. Saved
        # with the settings.
        self.register_buffer("chosen", torch.tensor(False))
        self.register_buffer("scale", torch.zeros(n_domains))
        self.register_buffer("cold_items", cold_items, persistent=False)  # None: not registered
        self.register_buffer("item_domain", item_domain, persistent=False)
        self.mixture, self.cold_tolerance = mixture, cold_tolerance
        if cold_items is not None:
            self.register_buffer("cold_offset", torch.zeros(n_domains))
            if mixture:
                self.register_buffer("warm_temperature", torch.ones(n_domains))
                self.register_buffer("cold_temperature", torch.ones(n_domains))
            else:
                self.register_buffer("cold_scale", torch.ones(n_domains))
        # While the trainer chooses the settings: (domain, items, the model's scores, cosines) of
        # each scored batch, and the model's own scores are returned unchanged.
        self.recorded: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    @classmethod
    def from_config(
        cls,
        config,
        dataset,
        read_matrices: dict[str, Callable[[], torch.Tensor]],
        item_domain: torch.Tensor,
    ) -> ContentProfile | None:
        """The profile of ``content_profile_scales`` over the modalities of ``read_matrices``
        (each reads its unit frozen matrix), None where off or without a modality; ``item_domain``
        ``[n_items]`` (padding -1) gives the domains. With ``content_profile_cold_offsets``, the
        items never a training target of ``dataset`` (the training split) are scored by content
        alone. Each key acts with the one it refines (the yaml's "With ..."): ``~`` on one turns
        off those below it, so that a key the defaults set never stands alone."""
        scales, offsets = config["content_profile_scales"], config["content_profile_cold_offsets"]
        if not scales or not read_matrices:
            return None
        tolerance = config["content_profile_cold_tolerance"] or 0.0
        if not 0 <= tolerance < 1:
            raise ValueError(
                f"content_profile_cold_tolerance: {tolerance}; a fraction in [0, 1) of the best "
                "validation score"
            )
        temperatures = bool(offsets and config["content_profile_cold_temperatures"])
        for key in ("content_profile_cold_temperatures", "content_profile_warm_temperatures"):
            if temperatures and any(float(t) <= 0 for t in config[key] or ()):
                raise ValueError(f"{key}: {config[key]}; temperatures divide scores: each > 0")
        cold = None
        if offsets:
            cold = training_target_counts(dataset) == 0
            cold[0] = False  # padding
        matrices = {modality: read() for modality, read in read_matrices.items()}
        n_domains = int(item_domain.max()) + 1
        by_domain = item_domain if of_domain_history(config) else None
        return cls(matrices, n_domains, cold, temperatures, tolerance if offsets else 0.0, by_domain)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights saved before the flag (issue 29) carry settings a validation chose
        state_dict.setdefault(prefix + "chosen", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def items_with_content(self) -> torch.Tensor:
        """``[n_items]`` bool: the items with a vector in a profiled modality; the others score a
        cosine of 0 whatever the history."""
        rows = [getattr(self, f"{m}_matrix").abs().sum(1) > 0 for m in self.modalities]
        return torch.stack(rows).any(0)

    def forward(
        self,
        scores: torch.Tensor,
        item_seq: torch.Tensor,
        items: torch.Tensor,
        domain,
        pairwise: bool = False,
    ) -> torch.Tensor:
        """The model's ``scores`` of ``items`` (``[B, len(items)]``, or ``[B]`` with
        ``pairwise``: one item per row) for the histories ``item_seq``, with the profile, ranked
        as ``domain``'s (an index, or ``[B]`` with ``pairwise``)."""
        recording = self.recorded is not None and not pairwise
        if not (self.chosen or recording):  # no cosine needed
            return scores
        matrices = {m: getattr(self, f"{m}_matrix") for m in self.modalities}
        profiles = history_profiles(
            matrices, item_seq, domain_history(self.item_domain, item_seq, domain)
        )
        cosines = profile_cosines(profiles, matrices, items, pairwise)
        if recording:
            self.recorded.append((domain, items, scores, cosines))
            return scores
        fused = scores + self.scale[domain] * cosines
        if self.cold_items is None:
            return fused
        cold = self.cold_items[items]
        if not self.mixture:
            return torch.where(
                cold, self.cold_scale[domain] * cosines + self.cold_offset[domain], fused
            )
        if pairwise:  # LLMEMF.predict takes the item's score from its full ranking instead
            raise ValueError(
                "content_profile_cold_temperatures normalises over every item of the domain: "
                "score with full_sort_predict"
            )
        warm = self.warm_temperature[domain]
        temperature = self.cold_temperature[domain]
        return mixture_scores(fused, cosines, cold, warm, temperature, self.cold_offset[domain])


def mixture_scores(
    fused: torch.Tensor,
    cosines: torch.Tensor,
    cold: torch.Tensor,
    warm_temperature: torch.Tensor,
    cold_temperature: torch.Tensor,
    log_prior: torch.Tensor,
) -> torch.Tensor:
    """``[B, n]`` log-probabilities of a two-expert mixture over a domain's ``n`` items: the trained
    items by the model's ``fused`` scores over ``warm_temperature``, normalised over them; the
    never-trained (``cold``) items by their profile ``cosines`` over ``cold_temperature``,
    normalised over them, plus ``log_prior`` (the expert's log weight against the first's).
    Normalised per case, a confident content match can outrank trained items where a constant
    offset cannot."""
    warm = fused / warm_temperature
    content = cosines / cold_temperature
    warm = warm - torch.logsumexp(warm.masked_fill(cold, float("-inf")), 1, keepdim=True)
    content_norm = torch.logsumexp(content.masked_fill(~cold, float("-inf")), 1, keepdim=True)
    return torch.where(cold, content - content_norm + log_prior, warm)
