"""Domain-aware evaluation for every RecBole model: rank among the target domain's items, per domain.

RecBole ranks each test case among all items of both domains. Cross-domain papers rank among the
target item's domain only and report each domain apart. ``domain_aware(TrainerClass)`` adds that to
any RecBole trainer (the sequential ``Trainer`` and ItemKNN's ``TraditionalTrainer`` alike): the
evaluation data is split by the target item's domain, each part is evaluated by RecBole's own
collector and metrics with other-domain items masked out, and the parts are combined. Early
stopping then uses the same domain-restricted metric as the test.

Enabled when the config names a ``domain_field``; otherwise the trainer behaves as RecBole's.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch
from recbole.data.dataloader import AbstractDataLoader

from recbole_llmemf.domains import item_domains


class DomainAwareEvaluation:
    """Trainer mixin; see the module docstring. Result keys: RecBole's (all domains, weighted by
    test cases) plus ``"<domain>/<metric>"`` for each domain."""

    _eval_domain: int | None = None

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        domain_field = self.config["domain_field"]
        if not eval_data or domain_field is None:
            return super().evaluate(eval_data, load_best_model, model_file, show_progress)
        item_domain, names = item_domains(eval_data._dataset, domain_field)
        self._item_domain = item_domain.to(self.device)
        parts = self._parts_by_domain(eval_data, item_domain, len(names))
        result, sizes = OrderedDict(), {}
        for position, (domain, loader) in enumerate(parts):
            self._eval_domain = domain
            try:
                part = super().evaluate(
                    loader, load_best_model and position == 0, model_file, show_progress
                )
            finally:
                self._eval_domain = None
            sizes[names[domain]] = loader.sample_size
            result.update((f"{names[domain]}/{key}", value) for key, value in part.items())
        return OrderedDict(**combine_parts(result, sizes, self.config["metric_decimal_place"]), **result)

    def _parts_by_domain(self, eval_data: AbstractDataLoader, item_domain, n_domains: int):
        """One loader of the same kind per target domain, built once per evaluation loader."""
        cache = self.__dict__.setdefault("_domain_parts", {})
        if id(eval_data) not in cache:
            cache[id(eval_data)] = (eval_data, list(split_by_domain(eval_data, item_domain, n_domains)))
        return cache[id(eval_data)][1]

    def _mask_other_domains(self, scores: torch.Tensor) -> torch.Tensor:
        if self._eval_domain is not None:
            scores[:, self._item_domain != self._eval_domain] = float("-inf")
        return scores

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        return interaction, self._mask_other_domains(scores), positive_u, positive_i

    def _neg_sample_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._neg_sample_batch_eval(batched_data)
        if scores.dim() == 2:  # ranking mode: [users, n_items] with -inf outside the candidates
            scores = self._mask_other_domains(scores)
        return interaction, scores, positive_u, positive_i


def split_by_domain(loader: AbstractDataLoader, item_domain: torch.Tensor, n_domains: int):
    """Yield ``(domain, loader)`` for each domain that has test cases; same loader class, sampler."""
    dataset = loader._dataset
    target_domain = item_domain[dataset.inter_feat[dataset.iid_field]]
    for domain in range(n_domains):
        rows = target_domain == domain
        if rows.any():
            subset = dataset.copy(dataset.inter_feat[rows])
            yield domain, type(loader)(loader.config, subset, loader._sampler, shuffle=False)


def combine_parts(result: dict, sizes: dict, decimals: int) -> dict:
    """Overall metrics as the test-case-weighted mean of the per-domain ones (all are means)."""
    total = sum(sizes.values())
    metrics = dict.fromkeys(key.split("/", 1)[1] for key in result)  # keeps RecBole's order
    return {
        metric: round(sum(result[f"{d}/{metric}"] * n for d, n in sizes.items()) / total, decimals)
        for metric in metrics
    }


@functools.lru_cache(maxsize=None)
def domain_aware(trainer_class: type) -> type:
    """``trainer_class`` with :class:`DomainAwareEvaluation` mixed in (cached, so one class each)."""
    if issubclass(trainer_class, DomainAwareEvaluation):
        return trainer_class
    return type(f"DomainAware{trainer_class.__name__}", (DomainAwareEvaluation, trainer_class), {})
