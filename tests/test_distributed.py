"""RecBole's multi-process run (``run_recbole --nproc=2``) on CPUs: gloo, exact evaluation, reload."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
import torch
from conftest import SAMPLED_5
from recbole.quick_start import load_data_and_model, run
from recbole.utils import get_trainer

from recbole_llmemf.trainer.distributed import dist_backend, single_process_config


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return str(sock.getsockname()[1])


@pytest.mark.parametrize(
    "model, protocol",
    [
        ("LLMEMF", {}),
        # a general model through the negative-sampling loaders and the shared candidate files
        pytest.param("BPR", SAMPLED_5, marks=pytest.mark.slow),
    ],
)
def test_two_cpu_processes_match_one_process_and_checkpoint_reloads(model, protocol, tiny_dataset):
    config = {**tiny_dataset.config, **protocol}
    result = run(model, "tiny", config_dict=config, nproc=2, port=free_port())
    multi_process = result["test_result"]
    assert {"Movie/fullmrr", "Book/fullmrr", "Movie/both/fullmrr"} <= set(multi_process)

    # the checkpoint the first process wrote, reloaded here in one process without a process group
    (checkpoint,) = (tiny_dataset.data_path.parent / "saved").glob(f"{model}-*.pth")
    config, reloaded, _, _, _, test_data = load_data_and_model(str(checkpoint))
    assert not torch.distributed.is_initialized() and config["single_spec"]
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, reloaded)
    one_process = trainer.evaluate(test_data, load_best_model=False)
    # every overall, per-domain and per-group metric, exactly (RecBole's own averaging of the
    # processes' rounded metrics over padded shards misses this by up to 0.005 on this data)
    assert dict(one_process) == dict(multi_process)


def fake_config(**values) -> SimpleNamespace:
    return SimpleNamespace(final_config_dict={"use_gpu": True, "gpu_id": "0", **values})


def test_backend_is_gloo_without_cuda_and_the_config_key_wins(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dist_backend(fake_config()) == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dist_backend(fake_config()) == "nccl"
    assert dist_backend(fake_config(use_gpu=False)) == "gloo"
    assert dist_backend(fake_config(dist_backend="gloo")) == "gloo"
    with pytest.raises(ValueError, match="dist_backend"):
        dist_backend(fake_config(dist_backend="mpi"))


def test_checkpoint_config_is_single_process():
    config = fake_config(single_spec=False, local_rank=1, device=torch.device("cuda", 1))
    single = single_process_config(config)
    cfg = single.final_config_dict
    assert cfg["single_spec"] and cfg["local_rank"] == 0 and cfg["device"] == torch.device("cuda")
    assert config.final_config_dict["local_rank"] == 1, "the running config is left as it was"


def _gather_in_process(rank: int, port: str, out: str) -> None:
    """One of two processes: its share of 5 cases (DistributedSampler's: 0 2 4 / 1 3 0)."""
    import torch.distributed as dist
    from recbole.evaluator.collector import DataStruct

    from recbole_llmemf.evaluator.collector import CASE_IDS, TieCollector
    from recbole_llmemf.evaluator.metrics import TIES
    from recbole_llmemf.trainer.distributed import gather_cases
    from recbole_llmemf.trainer.profile_choice import SETTING_TIES

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    local = [0, 2, 4] if rank == 0 else [1, 3, 0]
    struct = DataStruct()
    struct[TIES] = torch.tensor([[case, 1, 1] for case in local])
    struct[CASE_IDS] = torch.tensor([[100 + case, 200 + case] for case in local])
    struct[SETTING_TIES] = torch.tensor([[[case, 1, 1], [10 + case, 1, 1]] for case in local])
    collector = TieCollector.__new__(TieCollector)  # the struct is all last_cases reads
    collector._last_struct = struct
    gather_cases(struct, 5, torch.device("cpu"))
    if rank == 0:
        torch.save((collector.last_cases, struct[SETTING_TIES]), out)
    dist.destroy_process_group()


def test_last_cases_are_every_processs_cases_in_order(tmp_path):
    """The per-case ranks the paired tests read hold all cases, not one process's share; so do
    the content profile's per-setting ranks, which every process chooses its settings from."""
    out = tmp_path / "cases.pt"
    torch.multiprocessing.spawn(_gather_in_process, args=(free_port(), str(out)), nprocs=2)
    (ids, ties), setting_ties = torch.load(out)
    assert setting_ties[:, :, 0].tolist() == [[case, 10 + case] for case in range(5)]
    assert ids.tolist() == [[100 + case, 200 + case] for case in range(5)]
    assert ties[:, 0].tolist() == list(range(5))
