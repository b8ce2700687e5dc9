"""LLMEMF's math, piece by piece, against slow and obvious references (paper §3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import init_seed

from recbole_llmemf import LLMEMF
from recbole_llmemf.config.configurator import PROPERTIES
from recbole_llmemf.data.training_data import NEXT_ITEMS


@pytest.fixture
def built(tiny_dataset):
    """(config, model, train_dataset) on the tiny data."""
    config = Config(model="LLMEMF", dataset=tiny_dataset.name, config_dict=tiny_dataset.config)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model = LLMEMF(config, train_data._dataset)
    return config, model, train_data


def encode_alone(model, modality, items):
    """Reference: one sequence encoded on its own, output at its last position."""
    seq = torch.tensor([items])
    positions = torch.arange(len(items))[None]
    output = model.encoder[modality](
        model.embed_items(seq, modality), positions, model.get_attention_mask(seq)
    )
    return output[0, -1]


def test_nine_representations_equal_encoding_each_subsequence_alone(built):
    """X-only / Y-only extraction by domain (order kept), last valid position, empty sub-sequence."""
    _, model, _ = built
    model.eval()
    generator = torch.Generator().manual_seed(0)
    length = 8
    item_seq = torch.randint(1, model.n_items, (12, length), generator=generator)
    item_seq_len = torch.randint(1, length + 1, (12,), generator=generator)
    x_items = torch.nonzero(model.item_domain == 0).flatten()
    item_seq[0], item_seq_len[0] = x_items[:length], 5  # a user with no item of domain 1
    item_seq[torch.arange(length)[None] >= item_seq_len[:, None]] = 0
    reps = model.forward(item_seq, item_seq_len)  # [3 M B H]
    assert reps.shape == (3, len(model.modalities), 12, model.hidden_size)
    domain_of = model.item_domain.tolist()
    for row, (seq, n) in enumerate(zip(item_seq.tolist(), item_seq_len.tolist())):
        merged = seq[:n]
        subsequences = [[i for i in merged if domain_of[i] == d] for d in range(2)] + [merged]
        for index, modality in enumerate(model.modalities):
            for s, items in enumerate(subsequences):
                expected = (
                    encode_alone(model, modality, items)
                    if items
                    else torch.zeros(model.hidden_size)
                )
                torch.testing.assert_close(reps[s, index, row], expected, rtol=1e-4, atol=1e-5)
    assert (reps[1, :, 0] == 0).all(), "no item of domain 1: zero representation"


def test_fused_cosine_scores_by_hand(built):
    _, model, _ = built
    model.eval()
    for head in model.head.values():
        torch.nn.init.normal_(head.bias)  # a trained head has a bias; the fused matmul folds it in
    reps = torch.randn(3, len(model.modalities), 2, model.hidden_size)
    reps[1, :, 0] = 0  # row 0 has no item of domain Y
    scores = model.scores(reps)
    expected = torch.zeros(3, 2, model.n_items)
    weights = {"id": 1.0, "image": 0.3, "text": 0.1}
    for s in range(3):
        for b in range(2):
            for i in range(model.n_items):
                for index, modality in enumerate(model.modalities):
                    query = reps[s, index, b]
                    if not query.any():
                        continue  # an empty sub-sequence scores 0
                    if modality == "id":
                        item = model.item_embedding.weight[i]
                    else:
                        query = model.head[modality](query)
                        item = getattr(model, f"{modality}_matrix")[i]
                    cosine = 0.0 if item.norm() == 0 else F.cosine_similarity(query, item, dim=0)
                    expected[s, b, i] += weights[modality] * cosine
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)
    assert (scores[1, 0] == 0).all()
    items = torch.tensor([1, 5])
    torch.testing.assert_close(
        model.scores(reps, items), expected[:, [0, 1], [1, 5]], rtol=1e-4, atol=1e-5
    )


def test_missing_vectors_score_zero_and_enter_as_learned_vector(built):
    _, model, _ = built
    missing = torch.nonzero(~model.has_image[1:]).flatten() + 1
    assert len(missing) > 0, "the tiny data set leaves some items without an image"
    assert (model.image_matrix[missing] == 0).all()
    embedded = model.embed_items(missing, "image")
    torch.testing.assert_close(embedded, model.missing_embedding["image"].expand_as(embedded))


@pytest.mark.parametrize("reading", ["by target", "by domain"])
def test_loss_matches_per_pair_cross_entropy(built, reading):
    """Each (history, target) pair of a per-position batch against its history encoded alone;
    Eq. 10's weights go with the sequence's relation to the target, or with its domain."""
    config, model, train_data = built
    model.eval()  # no dropout, so two forward passes agree
    if reading == "by target":
        model.own_domain_loss_weight, model.other_domain_loss_weight = 3.0, 0.25
        weights = torch.tensor([[1.0, 3.0, 0.25], [1.0, 3.0, 0.25]])  # [domain, term]
    else:  # lambda_X, lambda_Y: the X-only sequence is the own one for X targets, the other for Y
        model.domain_loss_weights = [2.0, 0.5]
        weights = torch.tensor([[1.0, 2.0, 0.5], [1.0, 0.5, 2.0]])
    batch = next(iter(train_data))[torch.arange(8)]
    losses = model.calculate_loss(batch)
    expected, n_pairs = torch.zeros(2, 3), 0
    with torch.no_grad():
        for seq, targets in zip(batch["item_id_list"], batch[NEXT_ITEMS]):
            for step in torch.nonzero(targets).flatten().tolist():
                history = torch.zeros_like(seq)[None]
                history[0, : step + 1] = seq[: step + 1]
                reps = model.forward(history, torch.tensor([step + 1]))
                scores = model.scores(reps)[:, 0] / config["temperature"]  # [3 n_items]
                item = int(targets[step])
                domain = int(model.item_domain[item])
                in_domain = torch.nonzero(model.item_domain == domain).flatten()
                column = (in_domain == item).nonzero().item()
                for term, sequence in enumerate([2, domain, 1 - domain]):
                    logits = scores[sequence, in_domain]
                    loss = F.cross_entropy(logits[None], torch.tensor([column]))
                    expected[domain, term] += loss
                n_pairs += 1
    assert n_pairs > len(batch), "several pairs per sequence"
    assert (expected > 0).all(), "targets of both domains"
    expected = (weights * expected).sum(0) / n_pairs  # the mean over pairs
    torch.testing.assert_close(torch.stack(losses), expected, rtol=1e-4, atol=1e-5)


def test_evaluation_fusion_has_a_weight_per_sequence(built):
    """Eq. 11: ``P_T + lambda_S P_S + lambda_Z P_Z``; one lambda for both unless merged_eval_weight."""
    _, model, _ = built
    scores = torch.tensor([[[1.0]], [[10.0]], [[100.0]]])  # X-only, Y-only, merged; 1 row, 1 item
    model.eval_weight, model.merged_eval_weight = 0.5, 0.5
    assert model.fuse_for_target(scores, torch.tensor([0])).item() == 1 + 5 + 50
    model.merged_eval_weight = 2.0
    assert model.fuse_for_target(scores, torch.tensor([0])).item() == 1 + 5 + 200
    assert model.fuse_for_target(scores, torch.tensor([1])).item() == 10 + 0.5 + 200


def test_full_sort_never_ranks_other_domain_items(built):
    _, model, train_data = built
    model.eval()
    batch = next(iter(train_data))
    scores = model.full_sort_predict(batch)
    target_domain = model.item_domain[batch["item_id"]]
    other = model.item_domain[None, :] != target_domain[:, None]
    assert torch.isneginf(scores[other]).all()
    assert torch.isfinite(scores[~other]).all()
    per_item = model.predict(batch)  # the target item of each row, same fusion (Eq. 11)
    torch.testing.assert_close(per_item, scores.gather(1, batch["item_id"][:, None]).squeeze(1))
    for domain in range(2):  # as the domain-aware trainer calls it: one target domain per batch
        rows = torch.nonzero(target_domain == domain).squeeze(1)
        torch.testing.assert_close(model.full_sort_predict(batch[rows]), scores[rows])


def test_training_step_moves_ids_not_frozen_features(built):
    _, model, train_data = built
    frozen = {name: buffer.clone() for name, buffer in model.named_buffers()}
    ids_before = model.item_embedding.weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    sum(model.calculate_loss(next(iter(train_data)))).backward()
    optimizer.step()
    assert not torch.equal(model.item_embedding.weight, ids_before)
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, frozen[name]), name
    assert not any(name.endswith("_matrix") for name in model.state_dict()), "frozen, not saved"


def test_ablation_ids_only_has_one_modality(tiny_dataset):
    config_dict = {**tiny_dataset.config, "use_image": False, "use_text": False}
    config = Config(model="LLMEMF", dataset=tiny_dataset.name, config_dict=config_dict)
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model = LLMEMF(config, train_data._dataset)
    assert model.modalities == ["id"]
    assert not hasattr(model, "image_matrix")


class RecordingConfig:
    def __init__(self, config):
        self.config, self.keys = config, set()

    def __getitem__(self, key):
        self.keys.add(key)
        return self.config[key]


def test_yaml_keys_are_exactly_the_keys_the_model_reads(built):
    """Dead keys and typos in LLMEMF.yaml fail here instead of silently reading None."""
    config, _, train_data = built
    ours, base = RecordingConfig(config), RecordingConfig(config)
    LLMEMF(ours, train_data._dataset)
    type("Probe", (SequentialRecommender,), {})(base, train_data._dataset)
    model_yaml = yaml.safe_load((PROPERTIES / "model" / "LLMEMF.yaml").read_text())
    # read elsewhere: train_neg_sample_args by RecBole's Config, the rest by LLMEMFDataset but
    # train_per_position and train_batch_pairs, read by the train loader (training_data.py) and
    # LLMEMFTrainer for the epoch length it logs, and learning_rate by RecBole's Trainer
    elsewhere = {
        "learning_rate",
        "train_neg_sample_args",
        "image_feature_suffix",
        "text_feature_suffix",
        "shuffled_modalities",
        "train_per_position",
        "train_batch_pairs",
    }
    # domain_field comes from the dataset yaml, since every model's evaluation needs it
    not_ours = {"domain_field"}
    assert ours.keys - base.keys - not_ours == set(model_yaml) - elsewhere


def test_evaluation_reuses_item_rows_until_a_weight_changes(built):
    _, model, train_data = built
    model.eval()
    batch = next(iter(train_data))
    with torch.no_grad():
        first = model.full_sort_predict(batch)
        cached = model.domain_item_rows()
        assert model.domain_item_rows() is cached
        model.item_embedding.weight.mul_(-1)  # an in-place update, as an optimizer step makes
        changed = model.full_sort_predict(batch)
        for domain, item_rows in enumerate(model.domain_item_rows()):
            items = getattr(model, f"domain_{domain}_items")
            torch.testing.assert_close(item_rows, model.fused_items(items))
    finite = torch.isfinite(first)
    assert not torch.allclose(first[finite], changed[finite])
    reps = model.forward(batch["item_id_list"], batch["item_length"])
    expected = model.fuse_for_target(model.scores(reps), model.item_domain[batch["item_id"]])
    torch.testing.assert_close(changed[finite], expected[finite], rtol=1e-4, atol=1e-5)
