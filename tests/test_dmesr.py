"""DMESR's dual-view enhancer (model/dmesr.py): its loss, the fusion's shapes and masking, and one
epoch of each RecBole backbone with it."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.quick_start import run_recbole
from recbole.utils import init_seed

from llmemf_cli.bench import main as bench_main
from recbole_llmemf import LLMEMF
from recbole_llmemf.bench.specs import model_specs
from recbole_llmemf.model.dmesr import SASRecDMESR
from recbole_llmemf.model.layers import EnhancedItemEmbedding


def built(tiny_dataset, model="SASRecDMESR", **options):
    config = Config(model=model, dataset="tiny", config_dict={**tiny_dataset.config, **options})
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation(config, create_dataset(config))
    return config, SASRecDMESR(config, train_data._dataset), train_data


def test_the_backbone_keeps_recboles_keys_and_gets_the_enhancers(tiny_dataset):
    config, model, _ = built(tiny_dataset)
    assert config["n_layers"] == 2 and config["loss_type"] == "CE"  # RecBole's SASRec.yaml
    assert set(config["dmesr_views"]) == {"llm_image", "llm_text", "llm_both", "title"}
    assert isinstance(model.item_embedding, EnhancedItemEmbedding)


def test_fusion_shapes_and_missing_views(tiny_dataset):
    _, model, _ = built(tiny_dataset)
    model.eval()
    embedding = model.item_embedding
    enhancer = embedding.enhancer
    items = torch.arange(model.n_items)
    fused = enhancer(items)
    assert fused.shape == (model.n_items, model.hidden_size) and torch.isfinite(fused).all()
    assert (fused[0] == 0).all(), "padding has no view"
    missing = torch.nonzero(~enhancer.has_llm_image[1:]).flatten() + 1
    assert len(missing) > 0, "the tiny data leaves some items without an image view"
    before = enhancer(missing)
    enhancer.llm_image_matrix[missing] = torch.randn(
        len(missing), enhancer.llm_image_matrix.shape[1]
    )
    torch.testing.assert_close(enhancer(missing), before)
    for view in enhancer.views:
        getattr(enhancer, f"has_{view}")[5] = False
    assert (enhancer(torch.tensor([5])) == 0).all(), "an item without any view adds nothing"
    # the backbone's two uses agree: a lookup and the whole matrix
    torch.testing.assert_close(embedding(items[None, :7])[0], embedding.weight[:7])
    torch.testing.assert_close(embedding.weight, embedding.embedding.weight + enhancer(items))
    with torch.no_grad():  # evaluation: one computation per set of weights
        first = embedding.weight
        assert embedding.weight is first
        enhancer.project["title"].weight.mul_(2)
        assert embedding.weight is not first
        torch.testing.assert_close(embedding.weight, embedding.embedding.weight + enhancer(items))


def test_alignment_loss_is_a_symmetric_infonce_over_the_batch_items(tiny_dataset):
    config, model, _ = built(tiny_dataset, dmesr_align_weight=0.5)
    enhancer = model.item_embedding.enhancer
    items = torch.tensor([3, 3, 0, 7, 12, 20])
    kept = torch.tensor(
        [i for i in [3, 7, 12, 20] if enhancer.has_llm_image[i] and enhancer.has_llm_text[i]]
    )
    image = F.normalize(enhancer.project["llm_image"](enhancer.llm_image_matrix[kept]), dim=-1)
    text = F.normalize(enhancer.project["llm_text"](enhancer.llm_text_matrix[kept]), dim=-1)
    logits = image @ text.T / config["dmesr_align_temperature"]
    labels = torch.arange(len(kept))
    expected = 0.25 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    torch.testing.assert_close(enhancer.alignment_loss(items), expected)
    _, unaligned, _ = built(tiny_dataset, dmesr_align_weight=0.0)
    assert unaligned.item_embedding.enhancer.alignment_loss(items) == 0


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"dmesr_combine": "gate"},
        {"dmesr_fusion": False},  # LLM views only, no cross-attention
        {"dmesr_views": {"title": "itememb_txtraw"}},  # the title view alone
    ],
)
def test_views_and_switches_train(tiny_dataset, options):
    _, model, train_data = built(tiny_dataset, **options)
    batch = next(iter(train_data))
    loss = model.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    projections = model.item_embedding.enhancer.project
    assert all(
        p.weight.grad is not None and p.weight.grad.abs().sum() > 0 for p in projections.values()
    )


@pytest.mark.parametrize("model", ["SASRecDMESR", "GRU4RecDMESR"])
def test_one_epoch_of_each_backbone(tiny_dataset, model):
    result = run_recbole(model=model, dataset="tiny", config_dict=tiny_dataset.config)
    assert 0 < result["test_result"]["fullmrr"] <= 1


def test_benchmark_labels(tiny_dataset, tmp_path):
    options = ["--dataset=tiny", f"--data-path={tiny_dataset.data_path}", "--epochs=1"]
    options += [
        f"--out={tmp_path}",
        "--models=SASRec+DMESR,GRU4Rec+DMESR,LLMEMF+DMESR",
        "--set",
        "state=WARNING",
    ]
    options += ["hidden_size=16", "inner_size=16", "embedding_size=16"]
    assert bench_main(options) == 0
    runs = json.loads((tmp_path / "tiny-full.json").read_text())["runs"]
    assert [(r["label"], r["model"], r["status"]) for r in runs] == [
        ("SASRec+DMESR", "SASRecDMESR", "ok"),
        ("GRU4Rec+DMESR", "GRU4RecDMESR", "ok"),
        ("LLMEMF+DMESR", "LLMEMF", "ok"),
    ]
    assert runs[0]["config"]["dmesr_combine"] == "add", "the enhancer's keys are recorded"
    assert runs[2]["config"]["item_enhancer"] == "dmesr" and "dmesr_views" in runs[2]["config"]


def test_llmemf_with_the_enhancer_in_place_of_its_adaptors(tiny_dataset):
    options = {"item_enhancer": "dmesr", "use_image": False, "use_text": False}
    config = Config(model="LLMEMF", dataset="tiny", config_dict={**tiny_dataset.config, **options})
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model = LLMEMF(config, train_data._dataset)
    assert model.modalities == ["id"] and isinstance(model.item_embedding, EnhancedItemEmbedding)
    losses = model.calculate_loss(next(iter(train_data)))
    assert len(losses) == 4 and losses[3] > 0, "Eq. 10's three terms and the alignment"
    with pytest.raises(ValueError, match="item_enhancer"):
        Config(
            model="LLMEMF",
            dataset="tiny",
            config_dict={**tiny_dataset.config, "item_enhancer": "x"},
        )


def test_ablation_labels_set_the_enhancers_switches():
    specs = model_specs(
        "SASRec+DMESR-noalign,GRU4Rec+DMESR-llm-only,LLMEMF+DMESR-title-only,SASRec+DMESR", False
    )
    assert specs == [
        ("SASRec+DMESR-noalign", "SASRecDMESR", {"dmesr_align_weight": 0.0}),
        ("GRU4Rec+DMESR-llm-only", "GRU4RecDMESR", {"dmesr_fusion": False}),
        (
            "LLMEMF+DMESR-title-only",
            "LLMEMF",
            {
                "item_enhancer": "dmesr",
                "use_image": False,
                "use_text": False,
                "dmesr_views": {"title": "itememb_txtraw"},
            },
        ),
        ("SASRec+DMESR", "SASRecDMESR", {}),
    ]
    with pytest.raises(SystemExit, match="SASRec\\+DMESR-noalign"):
        model_specs("SASRec+DMESR-typo", False)
