"""Sampled-candidate evaluation batches that hold ``eval_batch_size`` cases, one row per case plus
its candidates, for the domain-aware trainer (hooks on RecBole's ``NegSampleEvalDataLoader``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from recbole_llmemf.utils.options import plugin_options_on


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
    if not plugin_options_on(loader.config):
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
