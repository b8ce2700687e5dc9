"""The plugin's yaml files in RecBole's Config: LLMEMF's model defaults
(``properties/model/LLMEMF.yaml``), a dataset's own yaml, and the evaluation protocol
(``properties/protocol/``) that every model of a run receives."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import recbole
from recbole.config import Config
from recbole.utils import ModelType

PROPERTIES = resources.files("recbole_llmemf.properties")


def load_our_yaml_files(original: Callable, config: Config, model, model_class, dataset) -> None:
    """After RecBole's internal yaml (overall, model, sequential.yaml), load ours, so that our model
    defaults, dataset keys and evaluation protocol win over RecBole's while external config still wins."""
    original(config, model, model_class, dataset)
    for model_yaml in model_yaml_files(model, model_class):
        config._update_internal_config_dict(str(model_yaml))
    enhancer = config.external_config_dict.get(
        "item_enhancer", config.internal_config_dict.get("item_enhancer")
    )
    if enhancer is not None:  # LLMEMF's item_enhancer: the enhancer's keys
        config._update_internal_config_dict(str(enhancer_yaml(enhancer)))
    for dataset_yaml in dataset_yaml_files(config, dataset):
        keys = config._update_internal_config_dict(str(dataset_yaml)) or {}
        config.parameters["Dataset"] += [k for k in keys if k not in config.parameters["Dataset"]]
    protocol = config.external_config_dict.get(
        "protocol", config.internal_config_dict.get("protocol")
    )
    if protocol is not None:
        config._update_internal_config_dict(str(PROPERTIES / "protocol" / "common.yaml"))
        config._update_internal_config_dict(str(protocol_yaml(protocol)))
    train_ce_models_without_negatives(config)


def model_yaml_files(model: str, model_class) -> list[Path]:
    """Our model's yaml; for a RecBole backbone with an enhancer (``recbole_backbone``, such as
    SASRecDMESR), the backbone's own yaml from RecBole first, which RecBole does not find by the
    enhanced model's name, then the enhancer's."""
    backbone = getattr(model_class, "recbole_backbone", None)
    files = []
    if backbone is not None:
        files.append(recbole_model_yaml(backbone))
        model = getattr(model_class, "enhancer_name", model)
    files.append(Path(str(PROPERTIES / "model" / f"{model}.yaml")))
    return [path for path in files if path.is_file()]


def recbole_model_yaml(model: str) -> Path:
    """RecBole's own yaml of ``model`` (which may not exist)."""
    return Path(recbole.__file__).parent / "properties" / "model" / f"{model}.yaml"


def enhancer_yaml(enhancer: str) -> Path:
    """``item_enhancer: dmesr`` -> properties/model/DMESR.yaml."""
    if enhancer != "dmesr":
        raise ValueError(f"Unknown item_enhancer {enhancer!r}; available: dmesr.")
    return Path(str(PROPERTIES / "model" / "DMESR.yaml"))


def train_ce_models_without_negatives(config: Config) -> None:
    """RecBole's overall.yaml samples training negatives, which its own Config then rejects for
    sequential models with ``loss_type: CE`` (SASRec, GRU4Rec, ...; configurator.py L341-352)."""
    internal = config.internal_config_dict
    sequential = internal.get("MODEL_TYPE") == ModelType.SEQUENTIAL
    loss_type = config.external_config_dict.get("loss_type", internal.get("loss_type"))
    if (
        sequential
        and loss_type == "CE"
        and "train_neg_sample_args" not in config.external_config_dict
    ):
        internal["train_neg_sample_args"] = None


def dataset_yaml_files(config: Config, dataset: str) -> list[Path]:
    """The dataset's yaml shipped in properties/dataset/, then one beside its atomic files."""
    data_path = (
        config.external_config_dict.get("data_path") or config.internal_config_dict["data_path"]
    )
    candidates = [
        PROPERTIES / "dataset" / f"{dataset}.yaml",
        Path(data_path) / dataset / f"{dataset}.yaml",
    ]
    return [Path(str(path)) for path in candidates if path.is_file()]


def protocol_yaml(protocol: str) -> Path:
    path = PROPERTIES / "protocol" / f"{protocol}.yaml"
    if not path.is_file():
        available = sorted(
            p.name[: -len(".yaml")]
            for p in (PROPERTIES / "protocol").iterdir()
            if p.name.endswith(".yaml") and p.name != "common.yaml"
        )
        raise ValueError(f"Unknown protocol '{protocol}'. Available: {', '.join(available)}.")
    return Path(str(path))
