"""Make RecBole find LLMEMF and this package's yaml files by name, through RecBole's own entry points.

RecBole has no plugin registry: ``get_model`` imports ``recbole.model.<family>.<name>`` and ``Config``
reads yaml files from RecBole's own folder. ``register()`` hooks the few places RecBole looks things
up by name, instead of shadowing RecBole with copies: the model module, ``<Model>Dataset``,
``Config``'s internal yaml, the trainer lookup (domain-aware evaluation, a checkpoint file per run),
the eval samplers (fixed candidates), the sampled-evaluation batch width, the metric tables
(untruncated MRR), the training data of general models, LLMEMF's train loader (per-position
training) and multi-process start-up (distributed.py).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import re
import secrets
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import recbole
import recbole.config.configurator as configurator
import recbole.data.dataset as recbole_datasets
import recbole.data.utils as recbole_data_utils
import recbole.quick_start.quick_start as quick_start
import recbole.utils as recbole_utils
import recbole.utils.utils as recbole_utils_module
from recbole.config import Config
from recbole.data.dataloader import NegSampleEvalDataLoader, TrainDataLoader
from recbole.utils import ModelType

from recbole_llmemf import distributed
from recbole_llmemf.candidates import fixed_candidate_samplers
from recbole_llmemf.evaluation import case_batches, cases_per_batch, domain_aware
from recbole_llmemf.features import LLMEMFDataset, check_files_before_loading
from recbole_llmemf.general_train import train_on_histories_too
from recbole_llmemf.metrics import register_metrics
from recbole_llmemf.mixins import mixed_in
from recbole_llmemf.training_data import PerPositionTrainDataLoader

PROPERTIES = resources.files("recbole_llmemf.properties")
OUR_MODELS = {"LLMEMF": "recbole_llmemf.model"}
_RECBOLE_FAMILIES = ["general", "context_aware", "sequential", "knowledge_aware"]


def register() -> None:
    """Let RecBole's get_model, create_dataset, Config and run_recbole find LLMEMF. Safe to call twice."""
    for name, module_path in OUR_MODELS.items():
        # utils.get_model looks for recbole.model.<family>.<lower-case name> (utils.py L74-78)
        alias = f"recbole.model.sequential_recommender.{name.lower()}"
        sys.modules.setdefault(alias, importlib.import_module(module_path))
    # create_dataset picks recbole.data.dataset.<Model>Dataset when it exists (data/utils.py L41)
    recbole_datasets.LLMEMFDataset = LLMEMFDataset
    _wrap(recbole_datasets.Dataset, "_load_data", check_files_before_loading)  # domain_field
    _wrap(Config, "_load_internal_config_dict", _load_our_yaml_files)
    _wrap(recbole_data_utils, "create_samplers", _fixed_candidates_when_asked)
    # protocol / domain_field: eval_batch_size counts cases, not (case, candidate) rows
    _wrap(NegSampleEvalDataLoader, "_init_batch_size_and_step", cases_per_batch)
    _wrap(NegSampleEvalDataLoader, "collate_fn", case_batches)  # asked for by the trainer only
    # domain_field / protocol on benchmark files: general models also train on history items
    _wrap(recbole_datasets.Dataset, "build", train_on_histories_too)
    _wrap(recbole_data_utils, "get_dataloader", _per_position_training_when_asked)  # LLMEMF
    register_metrics()
    for module in (recbole_utils, recbole_utils_module, configurator, quick_start):
        _wrap(module, "get_model", _explain_unknown_model)
    for module in (recbole_utils, recbole_utils_module, quick_start):
        _wrap(module, "get_trainer", _domain_aware_trainer)
    distributed.install()  # multi-process runs: backend from `dist_backend`, CPU-capable


def _wrap(owner: object, name: str, hook: Callable) -> None:
    original = getattr(owner, name)
    if getattr(original, "_llmemf_hook", None) is hook:
        return

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        return hook(original, *args, **kwargs)

    wrapper._llmemf_hook = hook
    setattr(owner, name, wrapper)


def _explain_unknown_model(get_model: Callable, model_name: str):
    known = known_models()
    if model_name not in known:
        close = difflib.get_close_matches(model_name, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model '{model_name}'.{hint} Known models: {', '.join(sorted(known))}."
        )
    return get_model(model_name)


@functools.lru_cache(maxsize=1)
def known_models() -> tuple[str, ...]:
    """Class names of RecBole's models (read from its source, so nothing is imported) and ours."""
    names = set(OUR_MODELS)
    model_dir = Path(recbole.__file__).parent / "model"
    for family in _RECBOLE_FAMILIES:
        for path in (model_dir / f"{family}_recommender").glob("*.py"):
            classes = re.findall(r"^class (\w+)\(", path.read_text(encoding="utf-8"), re.M)
            names.update(c for c in classes if c.lower() == path.stem)
    return tuple(sorted(names))


def _fixed_candidates_when_asked(create_samplers: Callable, config, dataset, built_datasets):
    samplers = create_samplers(config, dataset, built_datasets)
    if not config["fixed_candidates"]:
        return samplers
    # several processes: the first draws the candidate files, the others read them
    return distributed.in_turn(
        config, fixed_candidate_samplers, config, dataset, built_datasets, samplers
    )


def _per_position_training_when_asked(get_dataloader: Callable, config, phase: str):
    """``train_per_position: True``: the train loader reads :func:`per_position_rows` of the
    prefix rows. data_preparation builds the samplers from the prefix rows before, so evaluation
    is unchanged."""
    loader = get_dataloader(config, phase)
    if phase != "train" or not config["train_per_position"]:
        return loader
    if config["model"] not in OUR_MODELS or loader is not TrainDataLoader:
        raise ValueError(
            f"train_per_position is an LLMEMF option; {config['model']} trains on prefix rows"
        )
    return PerPositionTrainDataLoader


def _domain_aware_trainer(get_trainer: Callable, model_type, model_name: str):
    # the domain split runs first, so each part is gathered across processes (distributed.py)
    trainer = distributed.distributed_trainer(get_trainer(model_type, model_name))
    return own_checkpoint(domain_aware(trainer))


class OwnCheckpointFile:
    """Trainer mixin: the run's checkpoint is ``<Model>-<time>-<pid>-<random>.pth``, its own file.

    RecBole names it ``<Model>-<time to the second>.pth`` (trainer.py L132), so two runs started in
    the same second (the README runs the ``full`` and ``sampled999`` benchmarks at once) write one
    file, and each may test the other's model. On for configs that use this plugin's options: a
    ``domain_field`` or a ``protocol`` set, or ``checkpoint_per_run: True`` (which the plugin's
    ``run_recbole`` command sets); ``checkpoint_per_run: False`` keeps RecBole's name. Not in
    multi-process training, whose processes must all name rank 0's file.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        per_run = config["checkpoint_per_run"]
        if per_run is None:
            per_run = config["domain_field"] is not None or config["protocol"] is not None
        if per_run and config["single_spec"] and getattr(self, "saved_model_file", None):
            stem, suffix = os.path.splitext(self.saved_model_file)
            self.saved_model_file = f"{stem}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def own_checkpoint(trainer_class: type) -> type:
    """``trainer_class`` with :class:`OwnCheckpointFile` mixed in, under the same name."""
    return mixed_in(OwnCheckpointFile, trainer_class, "")


def _load_our_yaml_files(original: Callable, config: Config, model, model_class, dataset) -> None:
    """After RecBole's internal yaml (overall, model, sequential.yaml), load ours, so that our model
    defaults, dataset keys and evaluation protocol win over RecBole's while external config still wins."""
    original(config, model, model_class, dataset)
    model_yaml = PROPERTIES / "model" / f"{model}.yaml"
    if model_yaml.is_file():
        config._update_internal_config_dict(str(model_yaml))
    for dataset_yaml in dataset_yaml_files(config, dataset):
        keys = config._update_internal_config_dict(str(dataset_yaml)) or {}
        config.parameters["Dataset"] += [k for k in keys if k not in config.parameters["Dataset"]]
    protocol = config.external_config_dict.get(
        "protocol", config.internal_config_dict.get("protocol")
    )
    if protocol is not None:
        config._update_internal_config_dict(str(PROPERTIES / "protocol" / "common.yaml"))
        config._update_internal_config_dict(str(protocol_yaml(protocol)))
    _train_ce_models_without_negatives(config)


def _train_ce_models_without_negatives(config: Config) -> None:
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
