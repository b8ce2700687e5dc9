"""LLMEMF's opt-in sampled softmax (``loss_negatives``): its gradient against the exact loss's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_llmemf import LLMEMF
from recbole_llmemf.model.sampled_softmax import SampledSoftmax

N_ITEMS, WIDTH = 30, 8


def gradients(loss_of, rows: torch.Tensor, queries: torch.Tensor):
    rows, queries = rows.clone().requires_grad_(), queries.clone().requires_grad_()
    loss_of(rows, queries).backward()
    return torch.cat([rows.grad.flatten(), queries.grad.flatten()])


def sampled_gradient(softmax, rows, queries, targets, corrected: bool, draws: int):
    q = softmax.q_0

    def loss(rows, queries):
        logits, negatives = softmax.logits(
            queries, targets, torch.arange(N_ITEMS), 0, lambda items: rows[items]
        )
        if not corrected:  # the same draws, the logQ correction taken back out
            logits[..., 1:] += torch.log(softmax.n_negatives * q[negatives])
        return F.cross_entropy(logits.flatten(0, 1), torch.zeros(logits.shape[1], dtype=int))

    return sum(gradients(loss, rows, queries) for _ in range(draws)) / draws


def test_gradient_tends_to_the_exact_loss_and_needs_the_logq_correction():
    torch.manual_seed(0)
    counts = torch.arange(N_ITEMS) ** 2  # a skewed popularity: q far from uniform
    rows, queries = torch.randn(N_ITEMS, WIDTH), torch.randn(1, 4, WIDTH)
    targets = torch.tensor([0, 5, 17, 29])

    def exact(rows, queries):
        return F.cross_entropy((queries @ rows.T).flatten(0, 1), targets)

    truth = gradients(exact, rows, queries)
    error = {}
    for n_negatives, corrected in ((100, True), (1600, True), (1600, False)):
        softmax = SampledSoftmax(n_negatives, [torch.arange(N_ITEMS)], counts)
        estimate = sampled_gradient(softmax, rows, queries, targets, corrected, draws=100)
        error[n_negatives, corrected] = ((estimate - truth).norm() / truth.norm()).item()
    assert error[1600, True] < 0.02, error  # relative error of the mean gradient
    assert error[100, True] > 2 * error[1600, True], "the bias shrinks as N grows"
    assert error[1600, False] > 10 * error[1600, True], "without logQ it does not"


def test_the_target_is_never_its_own_negative():
    softmax = SampledSoftmax(50, [torch.arange(3)], torch.tensor([0, 100, 0]))
    targets = torch.tensor([1, 2])
    logits, negatives = softmax.logits(
        torch.ones(1, 2, 4), targets, torch.arange(3), 0, lambda items: torch.ones(len(items), 4)
    )
    assert logits.shape == (1, 2, 51)
    hits = negatives[None, :] == targets[:, None]
    assert hits.any() and torch.isneginf(logits[0, :, 1:][hits]).all()
    assert torch.isfinite(logits[0, :, 1:][~hits]).all() and torch.isfinite(logits[..., 0]).all()


def test_llmemf_trains_with_sampled_negatives_and_reads_only_their_rows(tiny_dataset, monkeypatch):
    config = Config(
        model="LLMEMF",
        dataset=tiny_dataset.name,
        config_dict={**tiny_dataset.config, "loss_negatives": 5},
    )
    init_seed(config["seed"], True)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model = LLMEMF(config, train_data._dataset)
    read = []
    original = LLMEMF.fused_items

    def spy(self, items=None, hidden=None):
        read.append(None if items is None else len(items))
        return original(self, items, hidden)

    monkeypatch.setattr(LLMEMF, "fused_items", spy)
    batch = next(iter(train_data))
    losses = model.calculate_loss(batch)
    sum(losses).backward()
    assert all(torch.isfinite(loss) for loss in losses)
    assert None not in read, "never every item's row"
    assert model.item_embedding.weight.grad.abs().sum() > 0


def test_loss_negatives_must_be_positive(tiny_dataset):
    with pytest.raises(ValueError, match="loss_negatives must be a positive number"):
        SampledSoftmax(0, [torch.arange(3)], torch.zeros(3))
