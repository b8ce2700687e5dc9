"""LLMEMF's content-only items (``content_only_below``, ``id_dropout``): items without a training
interaction, and during training a random share of the others, scored by their content alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.quick_start import run_recbole
from recbole.utils import init_seed

from recbole_llmemf import LLMEMF
from recbole_llmemf.data.training_data import NEXT_ITEMS, training_target_counts


def build(tiny_dataset, **options):
    """(config, model, train_data) on the tiny data with ``options``."""
    config = Config(
        model="LLMEMF", dataset=tiny_dataset.name, config_dict={**tiny_dataset.config, **options}
    )
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation(config, create_dataset(config))
    return config, LLMEMF(config, train_data._dataset), train_data


def test_off_by_default_with_the_papers_parameters(tiny_dataset):
    _, model, _ = build(tiny_dataset)
    assert model.content_only is None and model.hidden_ids() is None
    assert not any("content_only" in name for name in model.state_dict())


def test_content_only_items_follow_their_training_targets_and_content(tiny_dataset):
    """RecBole builds the model on the training split; prefix rows and per-position rows agree."""
    config, _, prefix_data = build(tiny_dataset, content_only_below=1, train_per_position=False)
    _, _, per_position_data = build(tiny_dataset, content_only_below=1)
    dataset = prefix_data._dataset  # one row per (history, target) pair
    counts = torch.bincount(dataset.inter_feat["item_id"], minlength=dataset.item_num)
    assert torch.equal(training_target_counts(per_position_data._dataset), counts)
    item = int(dataset.inter_feat["item_id"][0])
    dataset.inter_feat = dataset.inter_feat[dataset.inter_feat["item_id"] != item]
    counts[item] = 0
    model = LLMEMF(config, dataset)
    untrained = [i == item for i in range(model.n_items)]
    assert model.content_only.untrained.tolist() == untrained
    assert model.content_only.without_id.tolist() == untrained

    config["content_only_below"] = 4
    model = LLMEMF(config, dataset)
    rare = (counts < 4) & (model.has_image | model.has_text)
    expected = [i == item or (i > 0 and bool(rare[i])) for i in range(model.n_items)]
    assert model.content_only.without_id.tolist() == expected
    assert model.content_only.untrained.tolist() == untrained
    assert sum(expected) > 1, "the tiny data has items seen 1-3 times"
    with pytest.raises(ValueError, match="content_only_below"):
        build(tiny_dataset, content_only_below=-1)


def test_hidden_items_score_bias_plus_weighted_content_cosines(tiny_dataset):
    """By hand: a hidden item's ID counts for nothing; the others score as the paper's model."""
    _, model, _ = build(tiny_dataset, content_only_below=1)
    _, paper, _ = build(tiny_dataset)
    paper.load_state_dict(model.state_dict(), strict=False)
    model.eval(), paper.eval()
    unseen = torch.zeros(model.n_items, dtype=torch.bool)
    unseen[[1, 2, 20]] = True
    model.content_only.without_id.copy_(unseen)
    with torch.no_grad():
        model.content_only.bias.fill_(0.5)
        model.content_only.content_weight["text"].fill_(2.0)
        model.content_only.content_weight["image"].fill_(-1.0)
        for head in model.head.values():
            torch.nn.init.normal_(head.bias)
    paper.head.load_state_dict(model.head.state_dict())
    reps = torch.randn(3, len(model.modalities), 2, model.hidden_size)
    scores, expected = model.scores(reps), paper.scores(reps)
    torch.testing.assert_close(scores[:, :, ~unseen], expected[:, :, ~unseen])
    for item in (1, 2, 20):
        for s in range(3):
            for b in range(2):
                score = torch.tensor(0.5)
                for index, modality in enumerate(model.modalities[1:], start=1):
                    vector = getattr(model, f"{modality}_matrix")[item]
                    query = model.head[modality](reps[s, index, b])
                    if vector.norm() > 0:
                        weight = model.content_only.content_weight[modality]
                        score = score + weight * F.cosine_similarity(query, vector, dim=0)
                torch.testing.assert_close(scores[s, b, item], score, rtol=1e-4, atol=1e-5)
    empty = torch.zeros_like(reps)
    assert (model.scores(empty) == 0).all(), "an empty sequence still scores 0 everywhere"


def test_unseen_items_enter_sequences_as_one_learned_vector(tiny_dataset):
    _, model, _ = build(tiny_dataset, content_only_below=1)
    model.content_only.without_id.zero_()
    model.content_only.without_id[[3, 4]] = True
    with torch.no_grad():
        model.content_only.input_embedding.normal_()
    items = torch.tensor([[3, 5, 4]])
    embedded = model.embed_items(items, "id")
    torch.testing.assert_close(embedded[0, 0], model.content_only.input_embedding)
    torch.testing.assert_close(embedded[0, 2], model.content_only.input_embedding)
    torch.testing.assert_close(embedded[0, 1], model.item_embedding.weight[5])


def test_id_dropout_hides_candidates_never_history_items(tiny_dataset):
    _, model, _ = build(tiny_dataset, id_dropout=0.9)
    model.train()
    items = torch.arange(1, model.n_items)[None]
    torch.testing.assert_close(model.embed_items(items, "id"), model.item_embedding(items))
    assert model.hidden_ids().float().mean() > 0.5


def test_unseen_items_are_no_training_negatives(tiny_dataset):
    """Their ID embedding and content vectors change nothing in the loss."""
    _, model, train_data = build(tiny_dataset, content_only_below=1)
    model.eval()  # no dropout: two passes agree
    batch = next(iter(train_data))[torch.arange(2)]
    in_batch = set(batch[NEXT_ITEMS].flatten().tolist()) | set(
        batch["item_id_list"].flatten().tolist()
    )
    never = [i for i in range(1, model.n_items) if i not in in_batch][:3]
    assert never, "the batch leaves some items out"
    for mask in (model.content_only.without_id, model.content_only.untrained):
        mask.zero_()
        mask[never] = True
    before = torch.stack(model.calculate_loss(batch))
    with torch.no_grad():
        model.item_embedding.weight[never] = torch.randn(len(never), model.hidden_size)
        model.text_matrix[never] = F.normalize(torch.randn(len(never), model.text_matrix.shape[1]))
    torch.testing.assert_close(torch.stack(model.calculate_loss(batch)), before)
    model.content_only.untrained[never] = False
    assert not torch.allclose(torch.stack(model.calculate_loss(batch)), before)


def test_id_dropout_hides_a_fresh_share_of_items_in_training_only(tiny_dataset):
    _, model, _ = build(tiny_dataset, id_dropout=0.5)
    model.train()
    draws = torch.stack([model.hidden_ids() for _ in range(200)]).float()
    assert (draws[:, 0] == 0).all(), "never the padding item"
    assert draws[:, 1:].mean().item() == pytest.approx(0.5, abs=0.03)
    assert not torch.equal(draws[0], draws[1])
    model.eval()
    assert not model.hidden_ids().any(), "content_only_below: 0 hides nothing at evaluation"
    with pytest.raises(ValueError, match="id_dropout"):
        build(tiny_dataset, id_dropout=1.0)


def test_one_epoch_learns_the_content_only_bias_and_weights(tiny_dataset):
    config = {**tiny_dataset.config, "content_only_below": 4, "id_dropout": 0.3}
    result = run_recbole(model="LLMEMF", dataset="tiny", config_dict=config, saved=True)
    assert result["best_valid_score"] == result["best_valid_score"]  # not NaN
    (checkpoint,) = __import__("pathlib").Path("saved").glob("LLMEMF-*.pth")
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    assert state["content_only.bias"].item() != 0.0
    assert state["content_only.content_weight.text"].item() != 0.1  # beta, where it starts
    assert state["content_only.input_embedding"].abs().sum().item() > 0
