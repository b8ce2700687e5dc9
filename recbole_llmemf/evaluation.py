"""Domain-aware evaluation for every RecBole model: rank among the target domain's items, per domain.

RecBole ranks each test case among all items of both domains. Cross-domain papers rank among the
target item's domain only and report each domain apart. ``domain_aware(TrainerClass)`` adds that to
any RecBole trainer (the sequential ``Trainer`` and ItemKNN's ``TraditionalTrainer`` alike): the
evaluation data is split by the target item's domain, each part is evaluated by RecBole's own
collector and metrics with other-domain items masked out, and the parts are combined. Early
stopping then uses the same domain-restricted metric as the test. More rules make models
comparable: in full ranking, a sequential model's case hides its earlier items as RecBole already
does for general models (:func:`mask_history`); with sampled candidates, each case is scored by one
``full_sort_predict`` instead of RecBole's 1 + N ``predict`` rows (same scores, far less work); and
every ranking metric comes from one rank per case, ties resolved by their expectation
(:class:`TieCollector`, recbole_llmemf/metrics.py), so no tie rule can inflate a model.

Enabled by the plugin's options, a ``domain_field`` or a ``protocol`` in the config (the domain
split needs the ``domain_field``); without them the trainer is RecBole's, to the number.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable

import numpy as np
import torch
from recbole.data.dataloader import AbstractDataLoader, NegSampleEvalDataLoader
from recbole.evaluator import Collector, Evaluator
from recbole.evaluator.register import Register
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import EvaluatorType

from recbole_llmemf.domains import item_domains
from recbole_llmemf.indomain import train_in_target_domain
from recbole_llmemf.metrics import TIES, expected_metric_class
from recbole_llmemf.mixins import mixed_in

# The case's history holds items of both domains / of the target's domain only / none of the target's.
GROUPS = ("both", "target-only", "other-only")


class DomainAwareEvaluation:
    """Trainer mixin; see the module docstring.

    Result keys: RecBole's metric names (all test cases), ``<domain>/<metric>`` per target domain and
    ``<domain>/<group>/<metric>`` per user group of :data:`GROUPS`.
    """

    _eval_domain: int | None = None
    # Per target domain, the last evaluation's test cases: user and target tokens, h and e
    # (metrics.py) per case, for paired tests between runs (bench.py). Empty where not counted.
    last_cases: dict[str, dict[str, np.ndarray]] = {}

    def __init__(self, config, model):
        super().__init__(config, model)
        self.plugin_rules = uses_plugin_options(config)
        if self.plugin_rules:
            self.eval_collector = TieCollector(config)
            self.evaluator = TieEvaluator(config)

    def fit(self, train_data, *args, **kwargs):
        if self.config["train_in_target_domain"]:  # like-for-like CE baselines (indomain.py)
            train_in_target_domain(self.model, train_data._dataset, self.config["domain_field"])
        return super().fit(train_data, *args, **kwargs)

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
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
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if not self.plugin_rules:
            return interaction, scores, positive_u, positive_i
        scores = mask_history(
            interaction, scores, self.config["ITEM_ID_FIELD"], self.config["LIST_SUFFIX"]
        )
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


def uses_plugin_options(config) -> bool:
    """True where the config names a ``domain_field`` or a ``protocol``, the plugin's options."""
    return config["domain_field"] is not None or config["protocol"] is not None


class TieRegister(Register):
    """RecBole's register of what to collect, read from the classes :class:`TieEvaluator` uses."""

    def _build_register(self):
        for metric in self.metrics:
            for info in expected_metric_class(metric).metric_need:
                setattr(self, info, True)


class TieEvaluator(Evaluator):
    """RecBole's evaluator with the tie-expected classes of metrics.py under RecBole's names."""

    def __init__(self, config):
        self.config = config
        self.metrics = [metric.lower() for metric in config["metrics"]]
        self.metric_class = {name: expected_metric_class(name)(config) for name in self.metrics}


class TieCollector(Collector):
    """RecBole's collector, plus ``rec.ties`` (h, e per positive) and a sort-free ``rec.meanrank``.

    RecBole sorts every score row to rank the positives (collector.py L166). On a 100k-item
    catalog that sort is most of the evaluation time of every model; counting gives the same values.
    """

    def __init__(self, config):
        super().__init__(config)
        self.register = TieRegister(config)
        self._case_ids: list[torch.Tensor] = []
        self.last_cases: tuple[torch.Tensor, torch.Tensor] | None = None  # ([P 2] ids, [P 3] ties)

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        counted = [key for key in ("rec.meanrank", TIES) if self.register.need(key)]
        for key in counted:  # RecBole's collector would sort for rec.meanrank; we count instead
            setattr(self.register, key, False)
        try:
            super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        finally:
            for key in counted:
                setattr(self.register, key, True)
        if not counted:
            return
        higher, equal = tie_counts(scores_tensor, positive_u, positive_i)
        positive_u = positive_u.to(scores_tensor.device)
        positives = torch.bincount(positive_u, minlength=len(scores_tensor))
        if TIES in counted:
            ties = torch.stack([higher, equal, positives[positive_u]], 1)  # [P 3]
            self.data_struct.update_tensor(TIES, ties)
            self._case_ids.append(
                case_ids(self.config, interaction, scores_tensor, positive_u, positive_i)
            )
        if "rec.meanrank" in counted:
            self.data_struct.update_tensor(
                "rec.meanrank", mean_rank(scores_tensor, positive_u, higher, equal, positives)
            )

    def get_data_struct(self):
        struct = super().get_data_struct()
        if TIES in self.data_struct:  # per evaluation, as RecBole resets its own rec.* keys
            self.last_cases = (torch.cat(self._case_ids).cpu(), struct.get(TIES))
            del self.data_struct[TIES]
        self._case_ids = []
        return struct


def case_ids(config, interaction, scores, positive_u, positive_i) -> torch.Tensor:
    """``[P 2]`` (user id, target id) per positive; user -1 where the batch has no row per case
    (RecBole's own ``predict`` path of sampled candidates, one row per (case, candidate)) or none."""
    uid_field = config["USER_ID_FIELD"]
    positive_u = positive_u.to(scores.device)
    if interaction is not None and uid_field in interaction and len(interaction) == len(scores):
        users = interaction[uid_field].to(scores.device)[positive_u]
    else:
        users = torch.full_like(positive_u, -1)
    return torch.stack([users, positive_i.to(scores.device)], 1)


def case_table(dataset, parts: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, np.ndarray]:
    """One domain's cases as arrays: ``user``, ``item`` (tokens), ``higher``, ``equal`` (metrics.py)."""
    ids = torch.cat([part[0] for part in parts]).numpy()
    ties = torch.cat([part[1] for part in parts]).numpy()
    users = np.full(len(ids), "", dtype=object)
    known = ids[:, 0] >= 0
    users[known] = dataset.id2token(dataset.uid_field, ids[known, 0])
    return {
        "user": users.astype(str),
        "item": np.asarray(dataset.id2token(dataset.iid_field, ids[:, 1])).astype(str),
        "higher": ties[:, 0].astype(np.int64),
        "equal": ties[:, 1].astype(np.int64),
    }


def tie_counts(
    scores: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per positive: candidates scored above it (h) and equal to it, itself included (e)."""
    positive_u = positive_u.to(scores.device)
    target = scores[positive_u, positive_i.to(scores.device)].unsqueeze(1)  # [P 1]
    one_per_row = len(positive_u) == len(scores) and bool(
        (positive_u == torch.arange(len(scores), device=scores.device)).all()
    )
    rows = scores if one_per_row else scores[positive_u]  # [P n], no copy for one positive per row
    return (rows > target).sum(1), (rows == target).sum(1)


def mean_rank(
    scores: torch.Tensor,
    positive_u: torch.Tensor,
    higher: torch.Tensor,
    equal: torch.Tensor,
    positives: torch.Tensor,
) -> torch.Tensor:
    """RecBole's ``rec.meanrank`` rows ``[sum of positive ranks, user_len, number of positives]``.

    A positive's rank, ties averaged as RecBole does, is ``higher + (equal + 1) / 2``;
    ``user_len`` is the number of items above the row's minimum (RecBole: argmin of the descending
    sort).
    """
    rank = (higher + (equal + 1) / 2).to(scores.dtype)
    rank_sum = scores.new_zeros(len(scores)).index_add_(0, positive_u, rank)
    user_len = (scores > scores.min(dim=1, keepdim=True).values).sum(1)
    return torch.stack([rank_sum, user_len.to(scores.dtype), positives.to(scores.dtype)], 1)


def _has_full_sort(model) -> bool:
    return type(model).full_sort_predict is not AbstractRecommender.full_sort_predict


def mask_history(
    interaction, scores: torch.Tensor, item_field: str, list_suffix: str
) -> torch.Tensor:
    """Hide the case's earlier items from a sequential model's full ranking, the target excepted.

    RecBole already hides a user's training items from general models (BPR, ItemKNN) and the sampled
    protocol never offers them as negatives; without this, sequential models alone would be ranked
    against the items the user has just consumed.
    """
    list_field = item_field + list_suffix
    if list_field not in interaction:  # general models: RecBole's history_index did it
        return scores
    history = interaction[list_field].to(scores.device)  # [B L], 0 on padding
    target = interaction[item_field].to(scores.device)
    kept = scores.gather(1, target[:, None])
    scores.scatter_(1, history, float("-inf"))
    scores.scatter_(1, target[:, None], kept)
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


def domain_aware(trainer_class: type) -> type:
    """``trainer_class`` with :class:`DomainAwareEvaluation` mixed in."""
    return mixed_in(DomainAwareEvaluation, trainer_class, "DomainAware")


def cases_per_batch(init_batch_size_and_step: Callable, loader) -> None:
    """``eval_batch_size`` counts test cases under sampled candidates too (``protocol`` or
    ``domain_field`` in the config).

    RecBole's ``NegSampleEvalDataLoader`` counts rows, one per (case, candidate), so with 999
    negatives a batch of 256 rows holds one case (general_dataloader.py L121-136). The domain-aware
    trainer scores a case with one ``full_sort_predict`` whatever its candidates, and RecBole's
    ``predict`` path splits large batches itself (``Trainer._spilt_predict``), so the batch can
    hold ``eval_batch_size`` cases.
    """
    init_batch_size_and_step(loader)
    sampled = loader.neg_sample_args["distribution"] != "none"
    if not sampled or loader.neg_sample_args["sample_num"] == "none":
        return
    if not uses_plugin_options(loader.config):
        return
    loader.step = loader.config["eval_batch_size"]
    loader.set_batch_size(loader.step * int(loader.uid2items_num.max()) * loader.times)


def case_batches(collate_fn: Callable, loader, index) -> tuple:
    """A batch of sampled-candidate cases as ``(cases, candidates [B, 1 + N], positive_u,
    positive_i)``, where the domain-aware trainer asked for it (``loader.case_batches``).

    RecBole's batch repeats each case 1 + N times and joins item features onto every copy
    (``_neg_sample_by_point_wise_sampling``): with 999 negatives that copying costs more than
    scoring. A model with ``full_sort_predict`` needs each case once and the candidates' ids;
    the negatives come from the same sampler call, in RecBole's ``k * B + j`` layout.
    """
    sampled = hasattr(loader, "uid2items_num")  # RecBole sets it where negatives are drawn
    if not (getattr(loader, "case_batches", False) and sampled and loader.uid2items_num.max() == 1):
        return collate_fn(loader, index)  # unsampled, or several cases of a user share a row
    dataset = loader._dataset
    rows = np.array([loader.uid2index[uid].start for uid in loader.uid_list[np.array(index)]])
    cases = loader.transform(dataset, dataset[rows])
    targets = cases[dataset.iid_field]
    negatives = loader._sampler.sample_by_user_ids(
        cases[dataset.uid_field].numpy(), targets.numpy(), loader.neg_sample_num
    )
    candidates = torch.cat([targets[None, :], negatives.view(-1, len(rows))]).T  # [B 1+N]
    return dataset.join(cases), candidates, torch.arange(len(rows)), targets
