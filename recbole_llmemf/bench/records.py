"""A benchmark run's record (what the JSON keeps of it) and where its checkpoints lie."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    label: str
    model: str
    seed: int
    status: str = "ok"
    error: str = ""
    test_result: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # effective values of the keys that set the model
    epoch_seconds: list[float] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)
    # model construction (ItemKNN's similarity build) plus the whole of fit, over all sittings
    train_seconds: float = 0.0
    resumed_from_epoch: int | None = None  # the first epoch this sitting trained, after a resume
    budget_stopped: bool = False
    time_budget: float | None = None  # the --time-budget of the sitting that ended the run
    valid_scores: list[float] = field(default_factory=list)  # valid_metric after every epoch
    trained_under: str = ""  # --retest-from: the protocol of the training and early stopping
    command: str = ""
    # per domain, the test cases (evaluation.case_table); in <stem>.cases.npz, not in the JSON
    cases: dict = field(default_factory=dict, repr=False)

    def record(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "cases"}


RUN_FIELDS = set(Run.__dataclass_fields__)


@dataclass
class Plan:
    """Where a run keeps its checkpoints and how long it may train."""

    best: Path
    last: Path
    resume: bool = False
    time_budget: float | None = None


def differing_keys(config: dict, other: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The keys whose values differ between two effective configs, sorted."""
    keys = (config.keys() | other.keys()) - set(ignore)
    return sorted(key for key in keys if config.get(key) != other.get(key))
