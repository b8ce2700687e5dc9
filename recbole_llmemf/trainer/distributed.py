"""RecBole's multi-process runs (``run_recbole --nproc=N``, or ``--world_size --ip --port
--group_offset`` across nodes) on CPUs as well as GPUs, with evaluation results equal to one process.

RecBole 1.2.1 starts a process group only with NCCL and wraps every model for one GPU per process
(configurator.py ``_init_device``, trainer.py L60-64), so it cannot start on a CPU machine. Its
evaluation then averages each process's rounded metrics weighted by its number of batches times
four (``num_sample += len(batched_data)``, trainer.py L617), over shards that DistributedSampler
pads with repeated cases (abstract_dataloader.py L59-63): the numbers drift from one process's.
Its checkpoint keeps the multi-process config, so ``load_data_and_model`` fails in one process
("Default process group has not been initialized").

The hooks of this module (rows of hooks.py), for multi-process runs only:

- ``Config._init_device``: the backend comes from the config key ``dist_backend`` (``nccl`` or
  ``gloo``); without it, NCCL when CUDA is used and gloo otherwise. NCCL on CUDA is RecBole's own
  code, unchanged; any other choice starts the group here, on the CPU where CUDA is not used.
- ``DistributedDataParallel`` in RecBole's trainer: no ``device_ids`` for a model on the CPU.
- ``quick_start.run_recboles``, the target ``mp.spawn`` starts in each new process: this module's
  :func:`run_recboles` imports the plugin there (a spawned process starts a fresh interpreter).
- ``ensure_dir``: processes that start together no longer race to create ``log/`` and ``saved/``.
- ``create_dataset`` in ``run_recbole`` and ``create_samplers`` of the fixed-candidate protocol
  (data/candidates.py): the first process writes the files they cache, then the others read them
  (:func:`in_turn`).

and :func:`distributed_trainer` adds :class:`DistributedEvaluation` to every trainer (the
``get_trainer`` hook, trainer/plugin_trainer.py); it does nothing in one process.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist
from recbole.quick_start.quick_start import run_recboles as _recbole_run_recboles
from recbole.utils import EvaluatorType
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")
_SINGLE_PROCESS = {"single_spec": True, "local_rank": 0}


def init_device(original: Callable, config) -> None:
    """``Config._init_device``: the device ``use_gpu`` asks for, and multi-process start-up.

    RecBole 1.2 documents ``use_gpu`` but picks CUDA whenever one is visible and ``gpu_id`` is set
    (configurator.py L490): ``use_gpu: False`` then still trained on the GPU while a model built by
    hand stayed on the CPU. Multi-process runs (a ``local_rank``) start their process group here
    unless RecBole's own NCCL-on-CUDA branch applies.
    """
    cfg = config.final_config_dict
    if "local_rank" in cfg:
        _set_visible_gpus(cfg)  # before CUDA is first asked, as RecBole
        if _needs_own_start(config):
            return _init_process_group(config)
    original(config)
    if not cfg.get("use_gpu", True):
        cfg["device"] = torch.device("cpu")


def ensure_dir(dir_path: str) -> None:
    """RecBole's ``ensure_dir`` (utils.py L44-52) tests, then creates: processes starting together
    race on ``log/`` and ``saved/`` and one dies with FileExistsError."""
    os.makedirs(dir_path, exist_ok=True)


def loaded_in_turn(create_dataset: Callable, config):
    """``create_dataset`` of ``run_recbole``: the first process loads the data first; it writes the
    binary copies of the feature files (data/fileformat/item_vectors.py), which the others then
    read instead of racing to write them."""
    return in_turn(config, create_dataset, config)


def run_recboles(rank: int, *args) -> None:
    """``mp.spawn``'s target: unpickling it imports ``recbole_llmemf`` first, which registers the
    plugin in the new process; then RecBole's own ``run_recboles`` runs."""
    _recbole_run_recboles(rank, *args)


def uses_cuda(config) -> bool:
    """Whether RecBole would put this config's model on a GPU."""
    cfg = config.final_config_dict
    return bool(
        cfg.get("use_gpu", True) and str(cfg.get("gpu_id", "")) and torch.cuda.is_available()
    )


def dist_backend(config) -> str:
    """The config's ``dist_backend``; without it NCCL when CUDA is used, gloo otherwise."""
    backend = config.final_config_dict.get("dist_backend")
    if backend is None:
        return "nccl" if uses_cuda(config) else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"dist_backend must be 'nccl' or 'gloo', got '{backend}'")
    return backend


def _set_visible_gpus(cfg: dict) -> None:
    """The first lines of RecBole's ``_init_device``: ``gpu_id`` as a string, made the visible set."""
    gpu_id = cfg["gpu_id"]
    cfg["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
    os.environ["CUDA_VISIBLE_DEVICES"] = cfg["gpu_id"]


def _needs_own_start(config) -> bool:
    return not (dist_backend(config) == "nccl" and uses_cuda(config))


def _init_process_group(config) -> None:
    """RecBole's multi-process branch of ``_init_device`` with the backend and device chosen here."""
    cfg = config.final_config_dict
    local_rank = cfg["local_rank"]
    on_gpu = uses_cuda(config)
    dist.init_process_group(
        backend=dist_backend(config),
        rank=local_rank + cfg["offset"],
        world_size=cfg["world_size"],
        init_method=f"tcp://{cfg['ip']}:{cfg['port']}",
    )
    if on_gpu:
        torch.cuda.set_device(local_rank)
    cfg["device"] = torch.device("cuda", local_rank) if on_gpu else torch.device("cpu")
    cfg["single_spec"] = False
    if local_rank != 0:  # as RecBole: only the first process logs and shows progress
        cfg.update(state="error", show_progress=False, verbose=False)


def in_turn(config, function: Callable[..., T], *args) -> T:
    """``function(*args)`` in the first process, then in each machine's first, then in the rest.

    For steps that write a shared file the first time (the seeded candidate files): the first
    process writes it, the others read it, whether the data folder is shared across machines or
    each machine has its own copy. In one process it is just the call.
    """
    if config["single_spec"]:
        return function(*args)
    result, done = None, False
    for my_turn in (dist.get_rank() == 0, config["local_rank"] == 0, True):
        if my_turn and not done:
            result, done = function(*args), True
        dist.barrier()
    return result


class DeviceAwareDDP(DistributedDataParallel):
    """RecBole passes ``device_ids=[local_rank]`` (trainer.py L62), which torch rejects for a
    model on the CPU; there it is left out."""

    def __init__(self, module: torch.nn.Module, device_ids=None, **kwargs):
        on_cpu = all(p.device.type == "cpu" for p in module.parameters())
        super().__init__(module, device_ids=None if on_cpu else device_ids, **kwargs)


class GatheringEvaluator:
    """Wraps the trainer's evaluator (RecBole's, or the domain-aware trainer's own) for one
    evaluation: its metrics over the cases of every process, in the order one process sees them.
    ``n_cases`` is the evaluated loader's ``sample_size``; it drops the cases DistributedSampler
    repeats to give every process as many."""

    def __init__(self, evaluator, n_cases: int, device: torch.device):
        self.evaluator, self.n_cases, self.device = evaluator, n_cases, device

    def evaluate(self, dataobject):
        return self.evaluator.evaluate(gather_cases(dataobject, self.n_cases, self.device))


def gather_cases(struct, n_cases: int, device: torch.device):
    """Every process's per-case rows (``rec.*`` tensors, one row per case) on every process.

    DistributedSampler without shuffling gives process ``r`` of ``W`` the cases ``r, r + W,
    r + 2W, ...`` of the list padded with its first cases up to a multiple of W (torch's
    ``DistributedSampler.__iter__``): interleaving the processes' rows restores the list.
    """
    world_size = dist.get_world_size()
    local_rows = -(-n_cases // world_size)
    for key in [k for k, v in struct._data_dict.items() if k.startswith("rec.")]:
        local = struct[key]
        if not isinstance(local, torch.Tensor):
            continue
        if len(local) != local_rows:
            raise RuntimeError(
                f"'{key}' has {len(local)} rows in this process, expected one per case "
                f"({local_rows} of {n_cases} cases)"
            )
        local = local.to(device)
        parts = [torch.empty_like(local) for _ in range(world_size)]
        dist.all_gather(parts, local)
        rows = torch.stack(parts, dim=1).flatten(0, 1)  # [local_rows * W, ...], case order
        struct[key] = rows[:n_cases].cpu()
    return struct


class DistributedEvaluation:
    """Trainer mixin for multi-process runs; in one process every method is RecBole's.

    - Evaluation (when ``domain_field`` is set, i.e. the domain-aware evaluation is on): every
      process gathers all processes' per-case rows and computes the metrics over all cases, so
      each per-domain and per-group result equals one process's on the same weights.
    - Every process reads the checkpoint the first one wrote: the same file name (RecBole builds
      it from each process's clock) and a barrier before loading it.
    - The checkpoint holds a one-process config, so it reloads with ``load_data_and_model``.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        if config["single_spec"]:
            return
        names = [self.saved_model_file]
        dist.broadcast_object_list(names, src=0)
        self.saved_model_file = names[0]

    def _gathers(self) -> bool:
        return (
            self.config["domain_field"] is not None
            and self.config["eval_type"] == EvaluatorType.RANKING
        )

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if self.config["single_spec"] or not eval_data:
            return super().evaluate(eval_data, load_best_model, model_file, show_progress)
        if load_best_model:
            dist.barrier()  # the first process may still be writing the checkpoint
        if not self._gathers():
            return super().evaluate(eval_data, load_best_model, model_file, show_progress)
        evaluator = self.evaluator
        self.evaluator = GatheringEvaluator(evaluator, eval_data.sample_size, self.device)
        try:
            return super().evaluate(eval_data, load_best_model, model_file, show_progress)
        finally:
            self.evaluator = evaluator

    def _map_reduce(self, result, num_sample):
        if self._gathers():
            return result  # already computed over every process's cases
        return super()._map_reduce(result, num_sample)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if self.config["single_spec"] or self.config["local_rank"] != 0:
            return super()._save_checkpoint(epoch, verbose=verbose, **kwargs)
        multi_process = self.config
        self.config = single_process_config(multi_process)
        try:
            return super()._save_checkpoint(epoch, verbose=verbose, **kwargs)
        finally:
            self.config = multi_process


def single_process_config(config):
    """A copy of a multi-process ``config`` as one process on the same kind of device has it."""
    single = copy.copy(config)
    single.final_config_dict = {**config.final_config_dict, **_SINGLE_PROCESS}
    device = config.final_config_dict["device"]
    single.final_config_dict["device"] = torch.device(device.type)
    return single
