"""The C2DSR evaluation protocol: a fixed file of sampled negatives that every model scores.

Each valid / test case (user, target) is ranked against ``N`` negatives (999 in the paper's tables)
drawn uniformly, without replacement, from the target's domain minus every item the user interacted
with. Each case draws from its own generator, seeded by ``candidate_seed`` and the case's user and
target tokens, so a case's negatives never depend on which other cases exist (a general model's
data hold cases a sequential model's lack). ``candidate_draw: stream`` is the draw of files made
before 0.2 (one generator for all cases in token order), kept so their tables reproduce. They are
drawn once and saved beside the dataset as
``<dataset>.<phase>-candidates-<N>-seed<seed>-<cases>.tsv``; every model and every rerun reads that
file, so all scores are over exactly the same candidates. ``<cases>`` fingerprints what the draw
depends on: each case's user, target and every item the user interacted with. Data that changes
any of them (a re-import with other histories) gets a new file and a new draw, never old negatives.

Selected by ``fixed_candidates: True`` with ``eval_args.mode: uni<N>`` (``protocol: sampled999``).
RecBole's ``create_samplers`` is wrapped (hooks.py) so its valid / test samplers read the file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from recbole_llmemf.data.domains import item_domains
from recbole_llmemf.data.fileformat.atomic import atomic_write
from recbole_llmemf.data.splits import interacted_items
from recbole_llmemf.trainer.distributed import in_turn
from recbole_llmemf.utils.errors import DataError

logger = logging.getLogger(__name__)
HEADER = "user_id:token\titem_id:token\tneg_item_id:token_seq\n"


class FixedCandidateSampler:
    """Stands in for RecBole's valid / test sampler: negatives come from the candidates file."""

    def __init__(self, phase: str, path: Path, negatives: dict, base_sampler):
        self.phase = phase
        self.path = path
        self.negatives = negatives  # (user id, item id) -> int64 array of negative item ids
        self.used_ids = getattr(base_sampler, "used_ids", None)

    def sample_by_user_ids(self, user_ids, item_ids, num: int) -> torch.Tensor:
        """``[num * n]`` negatives, the k-th negative of row j at ``k * n + j`` (RecBole's layout)."""
        rows = []
        for user, item in zip(user_ids.tolist(), item_ids.tolist()):
            if (user, item) not in self.negatives:
                raise KeyError(
                    f"{self.path} has no candidates for test case (user id {user}, item id {item}); "
                    "delete the file to draw candidates for the current split"
                )
            rows.append(self.negatives[(user, item)][:num])
        return torch.from_numpy(np.stack(rows).T.reshape(-1))


def candidate_path(config, phase: str, num: int, cases: str) -> Path:
    """The file of ``phase``'s candidates; ``cases`` is :func:`case_fingerprint` of its cases.
    A per-case draw's name says so (``-percase``); a ``stream`` draw keeps the name it had."""
    draw = "" if config["candidate_draw"] == "stream" else "-percase"
    seed = config["candidate_seed"]
    name = f"{config['dataset']}.{phase}-candidates-{num}-seed{seed}{draw}-{cases}.tsv"
    return Path(config["data_path"]) / name


def case_fingerprint(dataset, eval_dataset, interacted: dict[int, set[int]]) -> str:
    """12 hex digits of SHA-256 over the sorted (user, target, interacted items) token rows.

    Computed from tokens and item sets, not from ids or one model's history lists, so every model
    (sequential or general, whose evaluation rows differ) finds the same file for the same data.
    """
    user_tokens = dataset.field2id_token[dataset.uid_field]
    item_tokens = dataset.field2id_token[dataset.iid_field]
    rows = sorted(
        "\t".join(
            [
                user_tokens[user],
                item_tokens[item],
                " ".join(sorted(item_tokens[list(interacted[user])])),
            ]
        )
        for user, item in zip(
            eval_dataset.inter_feat[dataset.uid_field].tolist(),
            eval_dataset.inter_feat[dataset.iid_field].tolist(),
        )
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:12]


def fixed_candidate_samplers(config, dataset, built_datasets, samplers):
    """Replace the valid and test samplers of ``create_samplers``' result by file-backed ones."""
    train_sampler, valid_sampler, test_sampler = samplers
    if config["candidate_draw"] not in (None, "per_case", "stream"):
        raise DataError(f"candidate_draw: {config['candidate_draw']!r} is not per_case or stream")
    interacted = interacted_items(built_datasets)
    replaced = []
    for phase, eval_dataset, base in (
        ("valid", built_datasets[1], valid_sampler),
        ("test", built_datasets[2], test_sampler),
    ):
        num = config[f"{phase}_neg_sample_args"]["sample_num"]
        cases = case_fingerprint(dataset, eval_dataset, interacted)
        path = candidate_path(config, phase, num, cases)
        if not path.is_file():
            _draw_candidates(config, dataset, eval_dataset, interacted, num, path)
        negatives = _read_candidates(dataset, path, num)
        _check_every_case_has_candidates(eval_dataset, negatives, path)
        replaced.append(FixedCandidateSampler(phase, path, negatives, base))
    return train_sampler, *replaced


def _draw_candidates(config, dataset, eval_dataset, interacted, num: int, path: Path) -> None:
    """Draw in token order from seeded generators, so every model draws the same file."""
    domain, names = item_domains(dataset, config["domain_field"])
    item_tokens = dataset.field2id_token[dataset.iid_field]
    user_tokens = dataset.field2id_token[dataset.uid_field]
    by_domain = [
        np.array(sorted(np.flatnonzero(domain.numpy() == d), key=item_tokens.__getitem__))
        for d in range(len(names))
    ]
    cases = sorted(
        zip(
            eval_dataset.inter_feat[dataset.uid_field].tolist(),
            eval_dataset.inter_feat[dataset.iid_field].tolist(),
        ),
        key=lambda case: (user_tokens[case[0]], item_tokens[case[1]]),
    )
    stream = np.random.default_rng(config["candidate_seed"])
    with atomic_write(path) as file:
        file.write(HEADER)
        for user, item in tqdm(cases, desc=f"drawing {path.name}", unit="case", leave=False):
            rng = (
                stream
                if config["candidate_draw"] == "stream"
                else case_generator(config["candidate_seed"], user_tokens[user], item_tokens[item])
            )
            negatives = _draw(rng, by_domain[int(domain[item])], interacted[user], num)
            if negatives is None:
                raise ValueError(
                    f"user {user_tokens[user]} has fewer than {num} non-interacted items in "
                    f"domain {names[int(domain[item])]}; ask for fewer negatives"
                )
            file.write(
                f"{user_tokens[user]}\t{item_tokens[item]}\t{' '.join(item_tokens[negatives])}\n"
            )
    logger.info(f"drew {len(cases)} x {num} candidates into {path}")


def case_generator(seed: int, user: str, target: str) -> np.random.Generator:
    """The generator of one case: ``seed`` and the SHA-256 of its user and target tokens."""
    digest = hashlib.sha256(f"{user}\t{target}".encode()).digest()
    return np.random.default_rng([seed, *np.frombuffer(digest[:16], dtype=np.uint32).tolist()])


def _draw(rng: np.random.Generator, items: np.ndarray, interacted: set[int], num: int):
    """``num`` items drawn uniformly without replacement from ``items`` minus ``interacted``.

    A random ordered subset of ``num + k`` items (k = interacted items among ``items``) keeps at
    least ``num`` allowed ones; its first ``num`` allowed items are a uniform sample of the pool.
    """
    history = np.fromiter(interacted, dtype=np.int64)
    excluded = int(np.isin(items, history).sum())
    if len(items) - excluded < num:
        return None
    picked = items[rng.choice(len(items), size=min(len(items), num + excluded), replace=False)]
    return picked[~np.isin(picked, history)][:num]


def _read_candidates(dataset, path: Path, num: int) -> dict[tuple[int, int], np.ndarray]:
    """``(user id, target id) -> negative ids`` of a candidates file; a line that is not
    ``user, target, num negatives`` (a truncated file, a foreign one) is a ``file:line`` error."""
    user_ids = dataset.field2token_id[dataset.uid_field]
    item_ids = dataset.field2token_id[dataset.iid_field]
    negatives = {}
    with open(path, encoding="utf-8") as file:
        file.readline()
        for lineno, line in enumerate(file, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or len(fields[2].split()) != num:
                raise DataError(
                    f"{path}:{lineno}: expected user, target and {num} negatives; the file is "
                    "truncated or not of this protocol: delete it to draw it again"
                )
            user, item, items = fields
            try:
                key = (user_ids[user], item_ids[item])
                negatives[key] = np.array([item_ids[i] for i in items.split()], dtype=np.int64)
            except KeyError as error:
                raise DataError(
                    f"{path}:{lineno}: unknown token {error} for this dataset"
                ) from None
    return negatives


def _check_every_case_has_candidates(eval_dataset, negatives: dict, path: Path) -> None:
    """Before training: a file cut at a line boundary lacks cases that evaluation would need."""
    feat = eval_dataset.inter_feat
    cases = zip(feat[eval_dataset.uid_field].tolist(), feat[eval_dataset.iid_field].tolist())
    missing = [case for case in cases if case not in negatives]
    if missing:
        raise DataError(
            f"{path}: {len(missing)} of {len(feat)} cases have no line (the file is truncated?): "
            "delete it to draw it again"
        )


def fixed_candidates_when_asked(create_samplers: Callable, config, dataset, built_datasets):
    samplers = create_samplers(config, dataset, built_datasets)
    if not config["fixed_candidates"]:
        return samplers
    # several processes: the first draws the candidate files, the others read them
    return in_turn(config, fixed_candidate_samplers, config, dataset, built_datasets, samplers)
