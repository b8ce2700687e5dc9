"""Domain-aware evaluation (every model) and the fixed sampled-candidates protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.evaluator import Collector
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.quick_start import run_recbole
from recbole.trainer import Trainer
from recbole.utils import InputType, get_model, get_trainer

from recbole_llmemf import evaluation
from recbole_llmemf.candidates import FixedCandidateSampler, candidate_path
from recbole_llmemf.evaluation import SortFreeCollector, domain_aware

# user -> merged history; X items are domain "A", Y items domain "B"
HISTORIES = {
    "u1": ["x1", "y1", "x2", "y2", "x3"],
    "u2": ["y3", "y1", "y4", "x4", "y2"],
    "u3": ["x2", "x3", "x1", "x4", "y3"],
    "u4": ["y2", "y4", "y1", "y3", "x2"],
    "u5": ["x1", "x2", "x4", "x3", "x1"],
}


@pytest.fixture
def hand_made(tmp_path):
    folder = tmp_path / "dataset" / "hand"
    folder.mkdir(parents=True)
    inter = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user, items in HISTORIES.items():
        inter += [f"{user}\t{item}\t{t}" for t, item in enumerate(items)]
    (folder / "hand.inter").write_text("\n".join(inter) + "\n")
    items = [f"x{i}\tA" for i in range(1, 5)] + [f"y{i}\tB" for i in range(1, 5)]
    (folder / "hand.item").write_text("item_id:token\tdomain:token\n" + "\n".join(items) + "\n")
    (folder / "hand.yaml").write_text(
        "load_col: {inter: [user_id, item_id, timestamp], item: [item_id, domain]}\n"
        "domain_field: domain\nprotocol: full\n"
    )
    return tmp_path / "dataset"


class OtherDomainLover(SequentialRecommender):
    """Fixed scores per item; every item of the other domain outscores every item of the target's."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.base = torch.rand(self.n_items, generator=torch.Generator().manual_seed(3))
        self.domain = dataset.item_feat["domain"]

    def full_sort_predict(self, interaction):
        target_domain = self.domain[interaction[self.ITEM_ID]]
        other = self.domain[None, :] != target_domain[:, None]
        return self.base.expand(len(target_domain), -1) + 10.0 * other

    def predict(self, interaction):
        return self.full_sort_predict(interaction)[
            torch.arange(len(interaction)), interaction[self.ITEM_ID]
        ]


def reference_metrics(dataset, scorer, test_rows):
    """MRR, NDCG@k, Hit@k by numpy: rank of the target among its own domain's items that the user
    has not interacted with before (the target itself stays a candidate)."""
    domain = dataset.item_feat["domain"].numpy()
    scores = scorer.base.numpy()
    ranks = {}
    for history, target in test_rows:
        same = [
            i for i in np.flatnonzero(domain == domain[target]) if i == target or i not in history
        ]
        ranks.setdefault(dataset.id2token("domain", domain[target]), []).append(
            1 + int((scores[same] > scores[target]).sum())
        )
    result = {}
    for name, r in ranks.items():
        r = np.array(r)
        result[f"{name}/fullmrr"] = np.mean(1 / r)
        for k in (1, 5):
            result[f"{name}/ndcg@{k}"] = np.mean(np.where(r <= k, 1 / np.log2(r + 1), 0))
            result[f"{name}/hit@{k}"] = np.mean(r <= k)
    return result


def test_scorer_preferring_other_domain_is_ranked_within_the_target_domain(hand_made):
    config = Config(
        model=OtherDomainLover,
        dataset="hand",
        config_dict={
            "data_path": str(hand_made),
            "topk": [1, 5],
            "use_gpu": False,
            "state": "WARNING",
        },
    )
    dataset = create_dataset(config)
    _, _, test_data = data_preparation(config, dataset)
    model = OtherDomainLover(config, test_data._dataset)
    result = domain_aware(Trainer)(config, model).evaluate(test_data, load_best_model=False)
    test = test_data._dataset.inter_feat
    rows = list(zip(test["item_id_list"].tolist(), test["item_id"].tolist()))
    expected = reference_metrics(dataset, model, rows)
    assert set(expected) <= set(result)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-4), key
    # test targets (last items): x3, x2, x1 in domain A (u1, u4, u5); y2, y3 in domain B (u2, u3)
    assert result["fullmrr"] == pytest.approx(
        (3 * expected["A/fullmrr"] + 2 * expected["B/fullmrr"]) / 5, abs=1e-4
    )
    # histories: u1, u2 both domains; u5 only A before an A target; u4 (A) and u3 (B) only the other
    groups = {key.rsplit("/", 1)[0] for key in result if key.count("/") == 2}
    assert groups == {"A/both", "A/target-only", "A/other-only", "B/both", "B/other-only"}


# the sampled protocol with 5 negatives, so that RecBole's own uni-N path can score it too
SAMPLED_5 = {
    "protocol": "sampled999",
    "eval_args": {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "group_by": "user",
        "mode": "uni5",
    },
}


def run_sampled(tiny_dataset, model, **extra):
    config = {**tiny_dataset.config, **SAMPLED_5, **extra}
    return run_recbole(model=model, dataset="tiny", config_dict=config, saved=False)


def read_candidates(path):
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


def tiny_config(tiny_dataset, **extra):
    return Config(model="SASRec", dataset="tiny", config_dict={**tiny_dataset.config, **extra})


def test_candidates_file_is_seeded_and_holds_no_positive_and_no_other_domain(tiny_dataset):
    run_sampled(tiny_dataset, "Pop")
    config = tiny_config(tiny_dataset, protocol="sampled999")
    path = candidate_path(config, "test", 5)
    first = path.read_bytes()
    path.unlink()
    run_sampled(tiny_dataset, "Pop")
    assert path.read_bytes() == first, "same seed, same candidates"
    run_sampled(tiny_dataset, "Pop", candidate_seed=7)
    other_seed = candidate_path(
        tiny_config(tiny_dataset, protocol="sampled999", candidate_seed=7), "test", 5
    )
    assert other_seed.read_bytes() != first

    folder = tiny_dataset.data_path / "tiny"
    domain_of = dict(
        line.split("\t")[:2] for line in (folder / "tiny.item").read_text().splitlines()[1:]
    )
    interacted = {}
    for line in (folder / "tiny.inter").read_text().splitlines()[1:]:
        user, item, _ = line.split("\t")
        interacted.setdefault(user, set()).add(item)
    rows = read_candidates(path)
    assert len(rows) == 80, "one test case per user"
    for user, target, negatives in rows:
        negatives = negatives.split()
        assert len(negatives) == len(set(negatives)) == 5
        assert not set(negatives) & interacted[user]
        assert {domain_of[n] for n in negatives} == {domain_of[target]}


MODELS = ["LLMEMF", "SASRec", "GRU4Rec", "SRGNN", "BPR", "ItemKNN"]


def test_every_model_scores_the_candidates_of_the_file(tiny_dataset, monkeypatch):
    served = {}
    original = FixedCandidateSampler.sample_by_user_ids

    def spy(self, user_ids, item_ids, num):
        negatives = original(self, user_ids, item_ids, num)
        served.setdefault(self.phase, set()).update(negatives.tolist())
        return negatives

    monkeypatch.setattr(FixedCandidateSampler, "sample_by_user_ids", spy)
    path = candidate_path(tiny_config(tiny_dataset, protocol="sampled999"), "test", 5)
    stamp = None
    for model in MODELS:
        served.clear()
        result = run_sampled(tiny_dataset, model)["test_result"]
        assert 0 < result["fullmrr"] <= 1
        stamp = stamp or path.stat().st_mtime_ns
        assert served.get("test"), f"{model} did not read the candidates file"
    assert path.stat().st_mtime_ns == stamp, "drawn once, then only read"


@pytest.mark.parametrize("model_name", ["LLMEMF", "SASRec", "BPR"])
def test_sampled_scores_from_full_sort_equal_recbole_predict_path(
    tiny_dataset, monkeypatch, model_name
):
    config = Config(
        model=model_name,
        dataset="tiny",
        config_dict={**tiny_dataset.config, **SAMPLED_5},
    )
    dataset = create_dataset(config)
    _, _, test_data = data_preparation(config, dataset)
    model = get_model(model_name)(config, test_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    fast = trainer.evaluate(test_data, load_best_model=False)
    monkeypatch.setattr(evaluation, "_has_full_sort", lambda model: False)
    slow = trainer.evaluate(test_data, load_best_model=False)
    assert fast == pytest.approx(slow, abs=1e-4)


def test_sort_free_ranks_equal_recbole_sorted_ranks(tiny_dataset):
    """Ties, several positives per row, masked (-inf) items: the same rec.meanrank and rec.topk."""
    config = Config(
        model="LLMEMF",
        dataset="tiny",
        config_dict={**tiny_dataset.config, "metrics": ["FullMRR", "NDCG", "GAUC"]},
    )
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (7, 40), generator=generator).float()  # many ties
    scores[:, :5] = float("-inf")
    positive_u = torch.tensor([0, 1, 1, 2, 3, 4, 5, 6, 6, 6])
    positive_i = torch.tensor([7, 8, 30, 9, 10, 11, 12, 13, 20, 39])
    collected = []
    for collector in (Collector(config), SortFreeCollector(config)):
        collector.eval_batch_collect(scores.clone(), None, positive_u, positive_i)
        collected.append(collector.get_data_struct())
    recbole, ours = collected
    torch.testing.assert_close(ours.get("rec.meanrank"), recbole.get("rec.meanrank"))
    torch.testing.assert_close(ours.get("rec.topk"), recbole.get("rec.topk"))
