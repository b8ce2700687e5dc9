"""Domain-aware evaluation for every RecBole model: rank among the target domain's items, per domain.

RecBole ranks each test case among all items of both domains. Cross-domain papers rank among the
target item's domain only and report each domain apart. ``domain_aware(TrainerClass)`` adds that to
any RecBole trainer (the sequential ``Trainer`` and ItemKNN's ``TraditionalTrainer`` alike): the
evaluation data is split by the target item's domain, each part is evaluated by RecBole's own
collector and metrics with other-domain items masked out, and the parts are combined. Early
stopping then uses the same domain-restricted metric as the test. More rules make models
comparable: in full ranking, every model's case hides all the user's items of earlier splits, as
RecBole does for general models only (:func:`mask_earlier_items`); with sampled candidates, each case is scored by one
``full_sort_predict`` instead of RecBole's 1 + N ``predict`` rows (same scores, far less work); and
every ranking metric comes from one rank per case, ties resolved by their expectation
(:class:`TieCollector`, recbole_llmemf/evaluator/metrics.py), so no tie rule can inflate a model.

Enabled by the plugin's options, a ``domain_field`` or a ``protocol`` in the config (the domain
split needs the ``domain_field``); without them the trainer is RecBole's, to the number.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict

import numpy as np
import torch
from recbole.data.dataloader import AbstractDataLoader, NegSampleEvalDataLoader
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import EvaluatorType

from recbole_llmemf.data.domains import item_domains
from recbole_llmemf.evaluator.collector import TieCollector, TieEvaluator, case_table
from recbole_llmemf.trainer.indomain import train_in_target_domain
from recbole_llmemf.utils.options import plugin_options_on

# The case's history holds items of both domains / of the target's domain only / none of the target's.
GROUPS = ("both", "target-only", "other-only")


class DomainAwareEvaluation:
    """Trainer mixin; see the module docstring.

    Result keys: RecBole's metric names (all test cases), ``<domain>/<metric>`` per target domain and
    ``<domain>/<group>/<metric>`` per user group of :data:`GROUPS`.
    """

    _eval_domain: int | None = None
    _earlier_items: torch.Tensor | None = None
    # Per target domain, the last evaluation's test cases: user and target tokens, h and e
    # (metrics.py) per case, for paired tests between runs (the benchmark). Empty where not counted.
    last_cases: dict[str, dict[str, np.ndarray]] = {}

    def __init__(self, config, model):
        super().__init__(config, model)
        self.plugin_rules = plugin_options_on(config)
        if self.plugin_rules:
            self.eval_collector = TieCollector(config)
            self.evaluator = TieEvaluator(config)

    def fit(self, train_data, *args, **kwargs):
        if self.config[
            "train_in_target_domain"
        ]:  # like-for-like CE baselines (trainer/indomain.py)
            train_in_target_domain(self.model, train_data._dataset, self.config["domain_field"])
        return super().fit(train_data, *args, **kwargs)

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        # built by the plugin's Dataset.build hook, kept by every part's dataset copy
        self._earlier_items = getattr(getattr(eval_data, "_dataset", None), "earlier_items", None)
        domain_field = self.config["domain_field"]
        if not eval_data or domain_field is None:
            self._ask_for_case_batches(eval_data)
            return super().evaluate(eval_data, load_best_model, model_file, show_progress)
        item_domain, names = item_domains(eval_data._dataset, domain_field)
        self._item_domain = item_domain.to(self.device)
        parts, cases = {}, defaultdict(list)
        for position, (domain, group, loader) in enumerate(self._parts(eval_data, item_domain)):
            self._ask_for_case_batches(loader)
            self._eval_domain = domain
            try:
                result = super().evaluate(
                    loader, load_best_model and position == 0, model_file, show_progress
                )
            finally:
                self._eval_domain = None
            parts[(names[domain], GROUPS[group])] = (loader.sample_size, result)
            cases[names[domain]].append(self.eval_collector.last_cases)
        self.last_cases = {
            name: case_table(eval_data._dataset, parts_of_domain)
            for name, parts_of_domain in cases.items()
            if all(part is not None for part in parts_of_domain)
        }
        return summarize(parts, self.config["metric_decimal_place"])

    def _parts(self, eval_data: AbstractDataLoader, item_domain: torch.Tensor):
        """One loader of the same kind per (target domain, user group), built once per loader."""
        cache = self.__dict__.setdefault("_eval_parts", {})
        if id(eval_data) not in cache:
            cache[id(eval_data)] = (eval_data, list(split_cases(eval_data, item_domain)))
        return cache[id(eval_data)][1]

    def _ask_for_case_batches(self, loader) -> None:
        """Let :func:`case_batches` hand this trainer one row per case plus its candidates."""
        if isinstance(loader, NegSampleEvalDataLoader):
            loader.case_batches = (
                self.plugin_rules
                and _has_full_sort(self.model)
                and self.config["eval_type"] == EvaluatorType.RANKING
            )

    def _mask_other_domains(self, scores: torch.Tensor) -> torch.Tensor:
        if self._eval_domain is not None:
            scores[:, self._item_domain != self._eval_domain] = float("-inf")
        return scores

    def _full_sort_batch_eval(self, batched_data):
        earlier_items = self._earlier_items
        if not self.plugin_rules or earlier_items is None:
            return super()._full_sort_batch_eval(batched_data)
        interaction, _, positive_u, positive_i = batched_data  # RecBole's history_index: below
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(
            (interaction, None, positive_u, positive_i)
        )
        users = interaction[self.config["USER_ID_FIELD"]]
        scores = mask_earlier_items(scores, users, earlier_items, positive_u, positive_i)
        return interaction, self._mask_other_domains(scores), positive_u, positive_i

    def _neg_sample_batch_eval(self, batched_data):
        interaction, row_idx, positive_u, positive_i = batched_data
        if row_idx is not None and row_idx.dim() == 2:  # case_batches: a row per case, [B 1+N]
            interaction, candidates = interaction.to(self.device), row_idx.to(self.device)
            full = self.model.full_sort_predict(interaction).view(len(candidates), -1)
            scores = torch.full_like(full, float("-inf"))
            scores.scatter_(1, candidates, full.gather(1, candidates))
            return interaction, self._mask_other_domains(scores), positive_u, positive_i
        if (
            not self.plugin_rules
            or not _has_full_sort(self.model)
            or self.config["eval_type"] != EvaluatorType.RANKING
        ):
            return super()._neg_sample_batch_eval(batched_data)
        # RecBole calls predict on every (case, candidate) row, re-encoding each sequence 1 + N
        # times; one full_sort_predict per case gives the same candidate scores at 1 / (1 + N) cost.
        interaction = interaction.to(self.device)
        row_idx = row_idx.to(self.device)
        first_rows = torch.nonzero(torch.diff(row_idx, prepend=row_idx.new_tensor([-1]))).flatten()
        full = self.model.full_sort_predict(interaction[first_rows]).view(len(first_rows), -1)
        columns = interaction[self.config["ITEM_ID_FIELD"]]
        scores = torch.full_like(full, float("-inf"))
        scores[row_idx, columns] = full[row_idx, columns]
        return interaction, self._mask_other_domains(scores), positive_u, positive_i


def _has_full_sort(model) -> bool:
    return type(model).full_sort_predict is not AbstractRecommender.full_sort_predict


def mask_earlier_items(
    scores: torch.Tensor, users: torch.Tensor, earlier_items: torch.Tensor, positive_u, positive_i
) -> torch.Tensor:
    """Hide every item the row's user had before the case's split, the case's targets excepted.

    ``earlier_items`` is the split's ``[users, K]`` table (recbole_llmemf/data/splits.py). One
    rule for every model: RecBole would hide a general model's earlier items and nothing of a
    sequential model's; the sampled protocol never offers them as negatives.
    """
    kept = scores[positive_u, positive_i]
    scores.scatter_(1, earlier_items[users.cpu()].to(scores.device), float("-inf"))
    scores[positive_u, positive_i] = kept
    return scores


def split_cases(loader: AbstractDataLoader, item_domain: torch.Tensor):
    """Yield ``(domain, group, loader)`` for each non-empty (target domain, user group) part;
    same loader class, same sampler, so candidates and history masking are RecBole's."""
    dataset = loader._dataset
    target_domain = item_domain[dataset.inter_feat[dataset.iid_field]]
    group_of_case = history_groups(loader, item_domain, target_domain)
    for domain in range(int(item_domain.max()) + 1):
        for group in range(len(GROUPS)):
            rows = (target_domain == domain) & (group_of_case == group)
            if rows.any():
                subset = dataset.copy(dataset.inter_feat[rows])
                yield (
                    domain,
                    group,
                    type(loader)(loader.config, subset, loader._sampler, shuffle=False),
                )


def history_groups(loader, item_domain: torch.Tensor, target_domain: torch.Tensor) -> torch.Tensor:
    """Index into :data:`GROUPS` of each case, from the domains its history holds.

    The history is the case's ``item_id_list`` where the data has one (sequential models, benchmark
    files); otherwise the user's training (and, for test, validation) items from RecBole's sampler.
    """
    dataset = loader._dataset
    list_field = dataset.iid_field + loader.config["LIST_SUFFIX"]
    if list_field in dataset.inter_feat:
        history_domain = item_domain[dataset.inter_feat[list_field]]  # [n L], -1 on padding
    else:
        used_ids = loader._sampler.used_ids
        users = dataset.inter_feat[dataset.uid_field].tolist()
        history_domain = torch.nn.utils.rnn.pad_sequence(
            [item_domain[sorted(used_ids[user])] for user in users],
            batch_first=True,
            padding_value=-1,
        )
    own = (history_domain == target_domain[:, None]).any(dim=1)
    other = ((history_domain >= 0) & (history_domain != target_domain[:, None])).any(dim=1)
    return torch.where(own & other, 0, torch.where(own, 1, 2))


def summarize(parts: dict, decimals: int) -> OrderedDict:
    """All cases, each domain, each (domain, group): means of the parts weighted by their cases."""
    metrics = list(next(iter(parts.values()))[1])
    domains = list(dict.fromkeys(domain for domain, _ in parts))
    scopes = [("", list(parts))] + [(f"{d}/", [k for k in parts if k[0] == d]) for d in domains]
    scopes += [(f"{d}/{g}/", [(d, g)]) for d, g in parts]
    summary = OrderedDict()
    for prefix, keys in scopes:
        total = sum(parts[k][0] for k in keys)
        for metric in metrics:
            value = sum(parts[k][0] * parts[k][1][metric] for k in keys) / total
            summary[prefix + metric] = round(float(value), decimals)  # not np.float64
    return summary
