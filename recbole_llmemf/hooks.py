"""Every change the plugin makes to RecBole's behaviour, in one table, installed by one call.

RecBole has no plugin interface: it finds models, datasets, trainers, samplers and yaml files by
name in its own modules. Each row below names what it changes (``target``: ``module:attribute``
or ``module.Class:attribute``), the config key that turns it on (``on``), the RecBole line it
protects or extends, and why. A row's hook does nothing, and RecBole's own code runs unchanged,
where its key is not set: ``tests/test_off_state.py`` checks RecBole's numbers with the plugin
imported. :func:`install` runs on ``import recbole_llmemf``; :func:`uninstall` restores RecBole.

Kinds: ``wrap`` (the hook is called as ``hook(original, *args)``), ``set`` (the attribute becomes
the hook, or a module gets an alias, imported when first asked for), ``item`` (``table[key]`` of a RecBole
dict becomes the hook), ``call`` (the hook runs once and returns its undo). Where a hook had to repeat some of
RecBole's code, its row says why.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Hook:
    kind: str  # "wrap", "set", "item" or "call"
    target: str  # module:attribute or module.Class:attribute; "sys.modules:<name>" for an alias
    hook: str  # module:attribute of ours
    on: str  # the config key (or condition) that turns it on
    protects: str  # the RecBole code it changes
    why: str


_TRAINER_OWNERS = ("recbole.utils", "recbole.utils.utils", "recbole.quick_start.quick_start")
_ENSURE_DIR_USERS = (
    "recbole.utils",
    "recbole.utils.utils",
    "recbole.utils.logger",
    "recbole.trainer.trainer",
    "recbole.data.utils",
    "recbole.data.dataset.dataset",
)
_GET_MODEL_USERS = (*_TRAINER_OWNERS, "recbole.config.configurator")

# fmt: off
HOOKS: tuple[Hook, ...] = (
    # --- today's numpy, setuptools and torch (utils/compat.py, utils/checkpoint.py); first rows
    Hook("call", "numpy", "recbole_llmemf.utils.compat:restore_numpy_aliases", "always",
         "Config.compatibility_settings (configurator.py L625-635), np.float etc. in metrics.py",
         "numpy 2 removed the aliases RecBole uses; only missing ones are added"),
    Hook("call", "sys.modules:ray", "recbole_llmemf.utils.compat:stub_broken_ray",
         "ray cannot be imported", "quick_start.py L20 `from ray import tune`",
         "RecBole's pinned ray needs pkg_resources and np.bool8; a stub only where it fails"),
    Hook("set", "recbole.trainer.trainer:torch", "recbole_llmemf.utils.checkpoint:recbole_torch",
         "always", "trainer.py L323, L583 torch.load",
         "torch >= 2.6 refuses RecBole's checkpoints; RecBole's trainer alone reads them with "
         "the plugin's restricted unpickler, torch.load stays torch's for everyone else"),
    *(Hook("set", f"{owner}:load_data_and_model",
           "recbole_llmemf.utils.checkpoint:load_data_and_model", "always",
           "quick_start.py L233-266",
           "the same reload through the restricted unpickler; a copy of its 20 lines, because it "
           "imports torch inside the function, where no module attribute reaches")
      for owner in ("recbole.quick_start.quick_start", "recbole.quick_start")),
    Hook("wrap", "recbole.config.configurator.Config:_init_device",
         "recbole_llmemf.trainer.distributed:init_device",
         "use_gpu: False; multi-process runs (nproc > 1), dist_backend",
         "configurator.py L480-510 _init_device",
         "use_gpu: False still trained on a visible GPU; multi-process runs started with NCCL "
         "only. RecBole's multi-process branch is repeated there, with the backend chosen"),
    # --- finding the plugin by name (RecBole's own lookups)
    Hook("set", "sys.modules:recbole.model.sequential_recommender.llmemf",
         "recbole_llmemf.model.llmemf", "model: LLMEMF", "utils.py L74-78 get_model",
         "get_model imports recbole.model.<family>.<lower-case name>"),
    Hook("set", "recbole.trainer:LLMEMFTrainer",
         "recbole_llmemf.trainer.llmemf_trainer:LLMEMFTrainer", "model: LLMEMF",
         "utils.py L87-110 get_trainer",
         "get_trainer picks recbole.trainer.<Model>Trainer where it exists"),
    Hook("set", "recbole.data.dataset:LLMEMFDataset", "recbole_llmemf.data.dataset:LLMEMFDataset",
         "model: LLMEMF", "data/utils.py L41 create_dataset",
         "create_dataset picks recbole.data.dataset.<Model>Dataset where it exists"),
    Hook("set", "sys.modules:recbole.model.sequential_recommender.contentcosine",
         "recbole_llmemf.model.content_cosine", "model: ContentCosine", "utils.py L74-78 get_model",
         "the training-free content baseline, found as LLMEMF is"),
    Hook("set", "recbole.trainer:ContentCosineTrainer",
         "recbole_llmemf.trainer.content_cosine_trainer:ContentCosineTrainer",
         "model: ContentCosine", "utils.py L87-110 get_trainer", "one epoch, no training pass"),
    Hook("set", "recbole.data.dataset:ContentCosineDataset",
         "recbole_llmemf.data.dataset:LLMEMFDataset", "model: ContentCosine",
         "data/utils.py L41 create_dataset", "it reads the same frozen item vectors as LLMEMF"),
    *(row for backbone in ("SASRec", "GRU4Rec") for row in (
        Hook("set", f"sys.modules:recbole.model.sequential_recommender.{backbone.lower()}dmesr",
             "recbole_llmemf.model.dmesr", f"model: {backbone}DMESR", "utils.py L74-78 get_model",
             "RecBole's backbone with DMESR's item enhancer, found as LLMEMF is"),
        Hook("set", f"recbole.data.dataset:{backbone}DMESRDataset",
             "recbole_llmemf.data.dataset:DMESRDataset", f"model: {backbone}DMESR",
             "data/utils.py L41 create_dataset", "the enhancer's frozen views (dmesr_views)"))),
    Hook("wrap", "recbole.config.configurator.Config:_load_internal_config_dict",
         "recbole_llmemf.config.configurator:load_our_yaml_files",
         "model: LLMEMF; a dataset yaml; protocol", "configurator.py L273-319",
         "RecBole reads yaml from its own folder only, and its sequential.yaml after a model's"),
    *(Hook("wrap", f"{owner}:get_model", "recbole_llmemf.utils.models:explain_unknown_model",
           "an unknown model name", "utils.py L84",
           "an unknown name is reported as \"No module named 'lightgbm'\"")
      for owner in _GET_MODEL_USERS),
    # --- data
    Hook("wrap", "recbole.data.dataset.Dataset:_load_data",
         "recbole_llmemf.data.dataset:check_files_before_loading", "domain_field",
         "dataset.py L268 _load_data",
         "RecBole fills a missing field with a mean or [PAD] and drops unknown items silently"),
    Hook("wrap", "recbole.data.dataset.Dataset:build",
         "recbole_llmemf.data.splits:build_splits",
         "domain_field or protocol (general models' part: benchmark files)", "dataset.py L1650 build",
         "general models would never see a user's first item, which every sequential model reads; "
         "full ranking hid a general model's earlier items, a sequential model's last few only"),
    Hook("wrap", "recbole.data.utils:create_samplers",
         "recbole_llmemf.data.candidates:fixed_candidates_when_asked", "fixed_candidates: True",
         "data/utils.py L155-190", "every model must score the same saved 999 negatives"),
    Hook("wrap", "recbole.data.utils:get_dataloader",
         "recbole_llmemf.data.training_data:per_position_loader_when_asked",
         "train_per_position: True (LLMEMF)", "data/utils.py L193",
         "LLMEMF reads each training sequence once with a target at every position"),
    Hook("wrap", "recbole.data.dataloader.NegSampleEvalDataLoader:_init_batch_size_and_step",
         "recbole_llmemf.data.eval_batches:cases_per_batch", "domain_field or protocol",
         "general_dataloader.py L121-136",
         "eval_batch_size counts cases, not (case, candidate) rows"),
    Hook("wrap", "recbole.data.dataloader.NegSampleEvalDataLoader:collate_fn",
         "recbole_llmemf.data.eval_batches:case_batches", "asked for by the plugin's trainer",
         "general_dataloader.py L138-160",
         "one row per case and its candidate ids, not 1 + N copies with item features joined"),
    # --- evaluation and training
    *(Hook("item", f"recbole.evaluator.register:{table}[fullmrr]",
           f"recbole_llmemf.evaluator.metrics:FullMRR{attribute}", "metrics: [FullMRR]",
           f"evaluator/register.py {table}",
           "the paper's untruncated MRR, found by name as RecBole's own metrics are")
      for table, attribute in (("metrics_dict", ""), ("metric_information", ".metric_need"),
                               ("metric_types", ".metric_type"))),
    *(Hook("wrap", f"{owner}:get_trainer", "recbole_llmemf.trainer.plugin_trainer:plugin_trainer",
           "domain_field or protocol (each mixin a no-op otherwise)", "utils.py L87-110",
           "domain-aware, tie-aware evaluation for every model, one checkpoint file per run, "
           "exact multi-process evaluation, the benchmark's observer")
      for owner in _TRAINER_OWNERS),
    # --- multi-process start-up (trainer/distributed.py)
    Hook("set", "recbole.trainer.trainer:DistributedDataParallel",
         "recbole_llmemf.trainer.distributed:DeviceAwareDDP", "nproc > 1 on CPUs",
         "trainer.py L60-64", "RecBole passes device_ids, which torch rejects for a CPU model"),
    Hook("wrap", "recbole.quick_start.quick_start:create_dataset",
         "recbole_llmemf.trainer.distributed:loaded_in_turn", "nproc > 1", "quick_start.py L67",
         "the first process writes the binary feature copies the others then read"),
    Hook("set", "recbole.quick_start.quick_start:run_recboles",
         "recbole_llmemf.trainer.distributed:run_recboles", "nproc > 1", "quick_start.py L182",
         "mp.spawn's target: unpickling ours imports the plugin in each new process"),
    *(Hook("set", f"{owner}:ensure_dir", "recbole_llmemf.trainer.distributed:ensure_dir",
           "nproc > 1 (harmless otherwise)", "utils.py L44-52",
           "processes starting together raced to create log/ and saved/")
      for owner in _ENSURE_DIR_USERS),
)
# fmt: on

_installed: list[Callable[[], None]] = []  # undo steps, newest last


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Module aliases (``sys.modules:<alias>`` rows), imported only when RecBole asks for one:
    importing the plugin must not import RecBole's sequential models (their sine.py turns
    autograd's anomaly detection on for everyone)."""

    def __init__(self) -> None:
        self.modules: dict[str, str] = {}

    def add(self, alias: str, module: str) -> Callable[[], None]:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        previous = sys.modules.pop(alias, None)
        self.modules[alias] = module

        def undo() -> None:
            self.modules.pop(alias, None)
            sys.modules.pop(alias, None)
            if previous is not None:
                sys.modules[alias] = previous
            if not self.modules and self in sys.meta_path:
                sys.meta_path.remove(self)

        return undo

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.modules:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(self.modules[spec.name])  # the module itself, not a copy

    def exec_module(self, module) -> None:
        pass  # executed when imported under its own name


_ALIASES = _AliasFinder()


def _resolve(path: str):
    module, _, attribute = path.partition(":")
    parts = module.split(".")
    owner = importlib.import_module(parts[0])
    for index in range(1, len(parts) + 1):  # import as deep as a module exists, then getattr
        try:
            owner = importlib.import_module(".".join(parts[:index]))
        except ModuleNotFoundError:
            owner = getattr(owner, parts[index - 1])
    for name in attribute.split(".") if attribute else ():
        owner = getattr(owner, name)
    return owner


def _owner_and_name(target: str):
    owner_path, _, name = target.partition(":")
    return _resolve(owner_path), name


def _install_one(hook: Hook) -> Callable[[], None]:
    if hook.kind == "call":
        return _resolve(hook.hook)() or (lambda: None)
    if hook.target.startswith("sys.modules:"):
        return _ALIASES.add(hook.target.partition(":")[2], hook.hook)
    if hook.kind == "item":
        return _set_item(hook)
    owner, name = _owner_and_name(hook.target)
    own = name in vars(owner)  # else inherited (a class) or absent: undo deletes ours
    original = getattr(owner, name, None)
    replacement = _resolve(hook.hook)
    if hook.kind == "wrap":
        replacement = _wrapped(original, replacement)
    setattr(owner, name, replacement)

    def undo() -> None:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)

    return undo


def _set_item(hook: Hook) -> Callable[[], None]:
    table_path, _, key = hook.target.rstrip("]").partition("[")
    table = _resolve(table_path)
    missing = object()
    previous = table.get(key, missing)
    table[key] = _resolve(hook.hook)

    def undo() -> None:
        if previous is missing:
            del table[key]
        else:
            table[key] = previous

    return undo


def _wrapped(original: Callable, hook: Callable) -> Callable:
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        return hook(original, *args, **kwargs)

    wrapper.__llmemf_hook__ = hook
    return wrapper


def install() -> None:
    """Install every row of :data:`HOOKS`, in order; a second call does nothing."""
    if _installed:
        return
    for hook in HOOKS:
        _installed.append(_install_one(hook))


def uninstall() -> None:
    """Undo :func:`install`: RecBole's own attributes, modules and tables again."""
    while _installed:
        _installed.pop()()
