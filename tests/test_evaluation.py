"""Domain-aware evaluation (every model) and the fixed sampled-candidates protocol."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
from conftest import SAMPLED_5
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.evaluator import Collector, Evaluator
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.quick_start import run_recbole
from recbole.trainer import Trainer
from recbole.utils import InputType, get_model, get_trainer, init_seed

from recbole_llmemf.data.candidates import FixedCandidateSampler
from recbole_llmemf.evaluator.collector import TieCollector, TieEvaluator
from recbole_llmemf.trainer import domain_aware as evaluation
from recbole_llmemf.trainer.domain_aware import DomainAwareEvaluation
from recbole_llmemf.trainer.mixins import mixed_in
from recbole_llmemf.utils.errors import DataError

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
    result = mixed_in(DomainAwareEvaluation, Trainer, "DomainAware")(config, model).evaluate(
        test_data, load_best_model=False
    )
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


def run_sampled(tiny_dataset, model, **extra):
    config = {**tiny_dataset.config, **SAMPLED_5, **extra}
    return run_recbole(model=model, dataset="tiny", config_dict=config, saved=False)


def read_candidates(path):
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


def candidate_files(tiny_dataset, phase="test", seed=2026):
    return sorted(
        (tiny_dataset.data_path / "tiny").glob(f"tiny.{phase}-candidates-5-seed{seed}-*.tsv")
    )


def test_candidates_file_is_seeded_and_holds_no_positive_and_no_other_domain(tiny_dataset):
    run_sampled(tiny_dataset, "Pop")
    [path] = candidate_files(tiny_dataset)
    first = path.read_bytes()
    path.unlink()
    run_sampled(tiny_dataset, "Pop")
    assert path.read_bytes() == first, "same seed, same candidates"
    run_sampled(tiny_dataset, "Pop", candidate_seed=7)
    [other_seed] = candidate_files(tiny_dataset, seed=7)
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


@pytest.mark.parametrize("cut", ["mid-line", "line boundary"])
def test_truncated_candidates_file_is_an_error_before_training(cut, tiny_dataset, monkeypatch):
    run_sampled(tiny_dataset, "Pop")
    [path] = candidate_files(tiny_dataset)
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:40] + ([lines[40][:20]] if cut == "mid-line" else [])
    path.write_text("".join(kept))
    trained = []
    monkeypatch.setattr(Trainer, "fit", lambda *args, **kwargs: trained.append(1))
    expected = f"{path}:41: expected user" if cut == "mid-line" else f"{path}: 41 of 80 cases"
    with pytest.raises(DataError, match=re.escape(expected)):
        run_sampled(tiny_dataset, "SASRec")
    assert not trained


def test_changed_histories_draw_new_candidates_never_reuse(tiny_dataset):
    run_sampled(tiny_dataset, "Pop")
    [old] = candidate_files(tiny_dataset)
    stamp = old.stat().st_mtime_ns
    run_sampled(tiny_dataset, "SASRec")
    assert candidate_files(tiny_dataset) == [old] and old.stat().st_mtime_ns == stamp, (
        "same data: every model reads the same file"
    )
    # the same (user, target) pairs, one user's first item replaced by another of its domain
    inter = tiny_dataset.data_path / "tiny" / "tiny.inter"
    header, first, *rest = inter.read_text().splitlines()
    user, item, time = first.split("\t")
    items = {line.split("\t")[1] for line in rest if line.split("\t")[0] == user}
    other = next(
        line.split("\t")[1]
        for line in rest
        if line.split("\t")[1][0] == item[0] and line.split("\t")[1] not in items | {item}
    )
    inter.write_text("\n".join([header, f"{user}\t{other}\t{time}", *rest]) + "\n")
    run_sampled(tiny_dataset, "Pop")
    files = candidate_files(tiny_dataset)
    assert len(files) == 2, "new cases, new file"
    [new] = [path for path in files if path != old]
    negatives = {row[0]: row[2].split() for row in read_candidates(new)}
    assert other not in negatives[user], "drawn for the new history"


@pytest.mark.parametrize("draw", ["per_case", "stream"])
def test_a_cases_negatives_do_not_depend_on_other_cases(draw, tiny_dataset):
    run_sampled(tiny_dataset, "Pop", candidate_draw=draw)
    [before] = candidate_files(tiny_dataset)
    # a user sorted before every other, on items that exist: the pools stay, the cases grow
    inter = tiny_dataset.data_path / "tiny" / "tiny.inter"
    lines = inter.read_text().splitlines()
    items = [line.split("\t")[1] for line in lines[1:7]]
    extra = [f"a0000\t{item}\t{1500000000 + k}" for k, item in enumerate(items)]
    inter.write_text("\n".join([lines[0], *extra, *lines[1:]]) + "\n")
    run_sampled(tiny_dataset, "Pop", candidate_draw=draw)
    [after] = [path for path in candidate_files(tiny_dataset) if path != before]
    old = {(user, target): negatives for user, target, negatives in read_candidates(before)}
    new = {(user, target): negatives for user, target, negatives in read_candidates(after)}
    assert len(new) == len(old) + 1
    same = sum(new[case] == negatives for case, negatives in old.items())
    if draw == "per_case":
        assert same == len(old), "every case keeps its negatives"
    else:  # the draw of files before 0.2: one stream, shifted by the new first case
        assert same < len(old) // 2


def test_unknown_candidate_draw_is_an_error(tiny_dataset):
    with pytest.raises(DataError, match="candidate_draw: 'random' is not per_case or stream"):
        run_sampled(tiny_dataset, "Pop", candidate_draw="random")


MODELS = ["LLMEMF", "SASRec", "GRU4Rec", "SRGNN", "BPR", "ItemKNN"]


def test_every_model_scores_the_candidates_of_the_file(tiny_dataset, monkeypatch):
    served = {}
    original = FixedCandidateSampler.sample_by_user_ids

    def spy(self, user_ids, item_ids, num):
        negatives = original(self, user_ids, item_ids, num)
        served.setdefault(self.phase, set()).update(negatives.tolist())
        return negatives

    monkeypatch.setattr(FixedCandidateSampler, "sample_by_user_ids", spy)
    stamp = None
    for model in MODELS:
        served.clear()
        result = run_sampled(tiny_dataset, model)["test_result"]
        assert 0 < result["fullmrr"] <= 1
        [path] = candidate_files(tiny_dataset)
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


def test_nan_target_score_is_an_error_naming_model_and_case(tiny_dataset, monkeypatch):
    config = Config(model="SASRec", dataset="tiny", config_dict=tiny_dataset.config)
    _, _, test_data = data_preparation(config, create_dataset(config))
    model = get_model("SASRec")(config, test_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, model)
    real = type(model).full_sort_predict
    monkeypatch.setattr(
        type(model), "full_sort_predict", lambda self, batch: real(self, batch) * float("nan")
    )
    with pytest.raises(ValueError, match=r"SASRec scored the target of \d+ test case\(s\) NaN"):
        trainer.evaluate(test_data, load_best_model=False)


def test_counted_mean_ranks_equal_recbole_sorted_ranks(tiny_dataset):
    """Ties, several positives per row, masked (-inf) items: the same rec.meanrank and rec.topk."""
    config = Config(
        model="LLMEMF",
        dataset="tiny",
        config_dict={**tiny_dataset.config, "metrics": ["GAUC", "ItemCoverage"]},
    )
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (7, 40), generator=generator).float()  # many ties
    scores[:, :5] = float("-inf")
    positive_u = torch.tensor([0, 1, 1, 2, 3, 4, 5, 6, 6, 6])
    positive_i = torch.tensor([7, 8, 30, 9, 10, 11, 12, 13, 20, 39])
    collected = []
    for collector in (Collector(config), TieCollector(config)):
        collector.eval_batch_collect(scores.clone(), None, positive_u, positive_i)
        collected.append(collector.get_data_struct())
    recbole, ours = collected
    torch.testing.assert_close(ours.get("rec.meanrank"), recbole.get("rec.meanrank"))
    torch.testing.assert_close(ours.get("rec.items"), recbole.get("rec.items"))


TIE_METRICS = ["FullMRR", "MRR", "NDCG", "Hit", "Recall", "Precision", "MAP"]


def tie_rule(config, scores, positive_u, positive_i):
    collector = TieCollector(config)
    collector.eval_batch_collect(scores, None, positive_u, positive_i)
    return TieEvaluator(config).evaluate(collector.get_data_struct())


def test_hand_made_ties_get_their_exact_expected_values(tiny_dataset):
    config = Config(
        model="SASRec",
        dataset="tiny",
        config_dict={**tiny_dataset.config, "metrics": TIE_METRICS, "topk": [1, 3]},
    )
    minus = float("-inf")
    scores = torch.tensor(
        [
            [minus, 3.0, 1.0, 1.0, 1.0, 0.0],  # target 3: 1 above, tied with 2 others: j in 2..4
            [minus, 2.0, 2.0, 2.0, 2.0, 2.0],  # constant scorer: j in 1..5
            [minus, 5.0, 4.0, 0.0, minus, minus],  # target 2, no tie: j = 2
        ]
    )
    result = tie_rule(config, scores, torch.tensor([0, 1, 2]), torch.tensor([3, 1, 2]))
    mrr = [(1 / 2 + 1 / 3 + 1 / 4) / 3, sum(1 / j for j in range(1, 6)) / 5, 1 / 2]
    mrr3 = [(1 / 2 + 1 / 3) / 3, (1 + 1 / 2 + 1 / 3) / 5, 1 / 2]
    ndcg3 = [(1 / np.log2(3) + 1 / np.log2(4)) / 3, (1 + 1 / np.log2(3) + 0.5) / 5, 1 / np.log2(3)]
    hit3 = [2 / 3, 3 / 5, 1]
    expected = {
        "fullmrr": np.mean(mrr),
        "mrr@1": np.mean([0, 1 / 5, 0]),
        "mrr@3": np.mean(mrr3),
        "map@3": np.mean(mrr3),
        "ndcg@1": np.mean([0, 1 / 5, 0]),
        "ndcg@3": np.mean(ndcg3),
        "hit@1": np.mean([0, 1 / 5, 0]),
        "hit@3": np.mean(hit3),
        "recall@3": np.mean(hit3),
        "precision@3": np.mean(hit3) / 3,
    }
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-4), key


def test_tie_rule_is_recbole_metrics_averaged_over_every_order_of_the_ties(tiny_dataset):
    """Break the ties in each of their orders, let RecBole compute its own metrics on the strict
    scores, average: that is the expectation the tie rule promises, for every metric."""
    config = Config(
        model="SASRec",
        dataset="tiny",
        config_dict={**tiny_dataset.config, "metrics": TIE_METRICS[1:], "topk": [1, 2, 3, 5]},
    )
    generator = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 3, (6, 6), generator=generator).float()  # about 2 ties per value
    positive_u, positive_i = torch.arange(6), torch.randint(0, 6, (6,), generator=generator)
    ours = tie_rule(config, scores.clone(), positive_u, positive_i)
    orders = list(itertools.permutations(range(6)))
    averaged = {}
    for order in orders:  # the position in `order` breaks ties within each equal-score group
        strict = scores + 1e-3 * torch.tensor(order, dtype=torch.float)
        collector = Collector(config)
        collector.eval_batch_collect(strict, None, positive_u, positive_i)
        for key, value in Evaluator(config).evaluate(collector.get_data_struct()).items():
            averaged[key] = averaged.get(key, 0) + value / len(orders)
    assert set(averaged) == set(ours)
    for key, value in averaged.items():
        assert ours[key] == pytest.approx(value, abs=2e-4), key


class ConstantScorer(SequentialRecommender):
    """Every item gets the same score: no information, so every metric must be at chance."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def full_sort_predict(self, interaction):
        return torch.zeros(len(interaction), self.n_items)

    def predict(self, interaction):
        return torch.zeros(len(interaction))


def chance(n_candidates: np.ndarray) -> dict:
    """Closed form of a uniformly random rank among n: MRR = H(n) / n, Hit@10, NDCG@10."""
    harmonic = np.array([sum(1 / j for j in range(1, n + 1)) for n in n_candidates])
    top = np.minimum(n_candidates, 10)
    discount = np.array([sum(1 / np.log2(j + 1) for j in range(1, t + 1)) for t in top])
    return {
        "fullmrr": np.mean(harmonic / n_candidates),
        "hit@10": np.mean(top / n_candidates),
        "ndcg@10": np.mean(discount / n_candidates),
    }


@pytest.mark.parametrize("protocol", ["full", "sampled"])
def test_constant_scorer_gets_chance_under_both_protocols(tiny_dataset, protocol):
    extra = SAMPLED_5 if protocol == "sampled" else {}
    config = Config(
        model=ConstantScorer,
        dataset="tiny",
        config_dict={**tiny_dataset.config, **extra, "topk": [10]},
    )
    dataset = create_dataset(config)
    _, valid_data, test_data = data_preparation(config, dataset)
    model = ConstantScorer(config, test_data._dataset)
    trainer = mixed_in(DomainAwareEvaluation, Trainer, "DomainAware")(config, model)
    domain = dataset.item_feat["domain"].numpy()
    for phase, data in (("valid", valid_data), ("test", test_data)):  # early stopping and test
        rows = data._dataset.inter_feat
        if protocol == "sampled":
            n_candidates = np.full(len(rows), 1 + 5)
        else:  # the target's domain minus the case's earlier items, the target kept
            cases = zip(rows["item_id_list"].tolist(), rows["item_id"].tolist())
            n_candidates = np.array(
                [
                    (domain == domain[target]).sum()
                    - sum(domain[item] == domain[target] for item in set(history) - {0, target})
                    for history, target in cases
                ]
            )
        result = trainer.evaluate(data, load_best_model=False)
        for key, value in chance(n_candidates).items():
            assert result[key] == pytest.approx(value, abs=1e-4), (phase, key)


@pytest.mark.parametrize("model_name", ["SASRec", "BPR"])
def test_full_ranking_hides_every_earlier_item_for_every_model(
    tiny_dataset, model_name, monkeypatch
):
    """Histories of up to 8 items, a window of 3: a sequential model hides what a general one does,
    the user's items of train and valid (the target excepted), not the last 3 items only."""
    config = Config(
        model=model_name,
        dataset="tiny",
        config_dict={**tiny_dataset.config, "MAX_ITEM_LIST_LENGTH": 3},
    )
    init_seed(config["seed"], True)
    dataset = create_dataset(config)
    _, _, test_data = data_preparation(config, dataset)
    domain = dataset.item_feat["domain"].numpy()
    hidden = {}
    original = TieCollector.eval_batch_collect

    def spy(self, scores, interaction, positive_u, positive_i):
        for row, item in zip(positive_u.tolist(), positive_i.tolist()):
            masked = np.isneginf(scores[row].cpu().numpy()) & (domain == domain[item])
            hidden[(int(interaction["user_id"][row]), item)] = set(np.flatnonzero(masked)) - {0}
        return original(self, scores, interaction, positive_u, positive_i)

    monkeypatch.setattr(TieCollector, "eval_batch_collect", spy)
    model = get_model(model_name)(config, test_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    trainer.evaluate(test_data, load_best_model=False)

    user_ids, item_ids = (dataset.field2token_id[field] for field in ("user_id", "item_id"))
    sequences = {}  # from the file, in its time order
    for line in (tiny_dataset.data_path / "tiny" / "tiny.inter").read_text().splitlines()[1:]:
        user, item, _ = line.split("\t")
        sequences.setdefault(user_ids[user], []).append(item_ids[item])
    expected = {
        (user, items[-1]): {i for i in items[:-1] if domain[i] == domain[items[-1]]} - {items[-1]}
        for user, items in sequences.items()
    }
    assert hidden == expected
    assert max(len(items) for items in expected.values()) > 3, "some hide more than the window"


@pytest.mark.parametrize("model_name", ["SASRec", "BPR"])
def test_sampled_protocol_batches_eval_batch_size_cases(tiny_dataset, model_name, monkeypatch):
    """64 cases per batch (RecBole: 64 rows, so 64 // (1 + 5) = 10 cases), and the same metrics as
    one case per batch."""
    drawn = []
    original = FixedCandidateSampler.sample_by_user_ids

    def spy(self, user_ids, item_ids, num):
        drawn.append(len(user_ids))  # RecBole's collate asks once per case
        return original(self, user_ids, item_ids, num)

    monkeypatch.setattr(FixedCandidateSampler, "sample_by_user_ids", spy)
    results, batches = [], []
    for eval_batch_size in (64, 1):
        config = Config(
            model=model_name,
            dataset="tiny",
            config_dict={**tiny_dataset.config, **SAMPLED_5, "eval_batch_size": eval_batch_size},
        )
        init_seed(config["seed"], True)
        dataset = create_dataset(config)
        _, valid_data, test_data = data_preparation(config, dataset)
        model = get_model(model_name)(config, test_data._dataset)
        trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
        drawn.clear()
        results.append(trainer.evaluate(test_data, load_best_model=False))
        batches.append((len(valid_data), len(test_data)))
        assert sum(drawn) == 80 and (max(drawn) > 1) == (eval_batch_size > 1)
    assert batches == [(2, 2), (80, 80)], "80 cases, one per user"
    assert results[0] == pytest.approx(results[1], abs=1e-4)
