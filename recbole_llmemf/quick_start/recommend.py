"""``llmemf-recommend``: top-k items per user from a saved checkpoint, as TSV.

Each user's history is every item the dataset holds for them: in time order where the data has a
time field, and, for split files with a history column (``llmemf-data c2dsr`` / ``amazon``), the
user's longest case (its history, then its target). The model scores the last
``MAX_ITEM_LIST_LENGTH`` items of that history, as in evaluation; the items of the whole history are
never recommended. Candidates are one domain's items: a named domain, or each user's next domain,
taken as the domain of their latest interaction (in the C2DSR and leave-one-out splits, the domain
the evaluation ranks that user in). Users are scored in chunks (``--chunk-users``), so memory stays
at about 10 bytes per user and item of a chunk beside the model and the data, and rows are written
as each chunk ends. Another chunk size gives the same lists; a score may differ in its last digit
(a matmul over another number of rows rounds differently).

Works for LLMEMF and RecBole's models alike (anything with ``full_sort_predict``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

NEXT, ALL = "next", "all"  # --domain values besides a domain token (llmemf_cli/recommend.py)


@dataclass
class Histories:
    """Per user, in user-id order: the model's input and every item to exclude.

    ``sequence`` ``[U, L]`` holds each user's last ``L`` items, left-aligned and padded with 0 (as
    RecBole's ``item_id_list``); ``offsets`` ``[U + 1]`` index ``items``, each user's item ids.
    """

    users: np.ndarray  # [U] user ids
    sequence: np.ndarray  # [U L]
    length: np.ndarray  # [U]
    offsets: np.ndarray  # [U + 1]
    items: np.ndarray  # [sum of history sizes]


def user_histories(dataset, max_length: int, list_suffix: str) -> Histories:
    """Every user's history from ``dataset.inter_feat`` (see the module docstring)."""

    inter = dataset.inter_feat
    users = inter[dataset.uid_field].numpy()
    targets = inter[dataset.iid_field].numpy()
    list_field = dataset.iid_field + list_suffix
    if dataset.time_field in inter:
        order = np.lexsort((inter[dataset.time_field].numpy(), users))  # by user, then time
    else:
        order = np.argsort(users, kind="stable")  # by user, file order within a user
    if list_field in inter:
        lists = inter[list_field].numpy()[order]
        rows = np.concatenate([lists, np.zeros((len(lists), 1), lists.dtype)], axis=1)
        counts = (lists != 0).sum(1)
        rows[np.arange(len(rows)), counts] = targets[order]  # each case: history, then target
        counts = counts + 1
        pair_users = np.repeat(users[order], rows.shape[1])
        pair_items = rows.reshape(-1)
        case_users = users[order]
    else:
        rows = counts = None
        case_users = pair_users = users[order]
        pair_items = targets[order]
    keep = pair_items != 0
    pairs = np.unique(np.stack([pair_users[keep], pair_items[keep]], 1), axis=0)
    user_ids, starts = np.unique(pairs[:, 0], return_index=True)
    offsets = np.append(starts, len(pairs))

    if rows is None:  # one row per interaction: the user's run of rows is the sequence
        ends = np.append(np.flatnonzero(np.diff(case_users)), len(case_users) - 1)
        run_starts = np.append(0, ends[:-1] + 1)
        flat, length = pair_items, np.minimum(ends - run_starts + 1, max_length)
        first = ends + 1 - length
    else:  # one row per case: the user's longest case, the last of equals
        best = {}
        for index, (user, count) in enumerate(zip(case_users.tolist(), counts.tolist())):
            if count >= best.get(user, (-1, 0))[0]:
                best[user] = (count, index)
        chosen = np.array([best[user][1] for user in user_ids.tolist()])
        width = rows.shape[1]
        flat = rows.reshape(-1)
        length = np.minimum(counts[chosen], max_length)
        first = chosen * width + counts[chosen] - length
    columns = np.arange(max_length)
    sequence = np.where(
        columns < length[:, None], flat[np.minimum(first[:, None] + columns, len(flat) - 1)], 0
    )
    return Histories(user_ids, sequence, length, offsets, pairs[:, 1])


@dataclass
class Summary:
    users: int
    rows: int
    seconds: float


def recommend(
    model,
    dataset,
    config,
    out_path: str,
    top_k: int = 10,
    domain: str = NEXT,
    chunk_users: int = 1024,
    device: torch.device | None = None,
    show_progress: bool = True,
) -> Summary:
    """Write ``user, rank, item, score`` rows for every user of ``dataset`` to ``out_path``.

    Rows of a user are sorted by score, then item id; items scored ``-inf`` (other domains,
    history) are left out, so a user with fewer than ``top_k`` candidates gets fewer rows.
    """
    from tqdm import tqdm

    from recbole_llmemf.data.fileformat.atomic import atomic_write

    device = device or next(model.parameters()).device
    model = model.to(device).eval()
    histories = user_histories(dataset, config["MAX_ITEM_LIST_LENGTH"], config["LIST_SUFFIX"])
    targets = Targets.of(dataset, config, histories, domain, device)
    user_tokens = dataset.field2id_token[dataset.uid_field]
    item_tokens = dataset.field2id_token[dataset.iid_field]
    header = [dataset.uid_field, "rank", dataset.iid_field, "score"]
    start, rows = time.perf_counter(), 0
    n_users = len(histories.users)
    with atomic_write(out_path) as file, torch.inference_mode():
        file.write("\t".join(header) + "\n")
        bar = tqdm(total=n_users, unit="user", desc="recommend", disable=not show_progress)
        for begin in range(0, n_users, chunk_users):
            chunk = slice(begin, min(begin + chunk_users, n_users))
            scores = chunk_scores(model, dataset, config, histories, targets, chunk, device)
            values, items = torch.topk(scores, min(top_k, scores.shape[1]), dim=1)
            rows += _write_rows(
                file, user_tokens[histories.users[chunk]], values.cpu(), items.cpu(), item_tokens
            )
            bar.update(chunk.stop - chunk.start)
        bar.close()
    return Summary(n_users, rows, time.perf_counter() - start)


@dataclass
class Targets:
    """Each user's candidate domain: ``None`` for every item (``--domain all``), else the domain
    index per user, each domain's first item and the item -> domain table (on ``device``)."""

    last_items: np.ndarray  # [n_users], each history's last item
    domain: torch.Tensor | None = None  # [n_users]
    first_item: torch.Tensor | None = None  # [n_domains]
    item_domain: torch.Tensor | None = None  # [n_items]

    @classmethod
    def of(cls, dataset, config, histories: Histories, domain: str, device) -> Targets:
        from recbole_llmemf.data.domains import item_domains

        last_items = histories.sequence[range(len(histories.users)), histories.length - 1]
        if domain == ALL:
            return cls(last_items)
        if config["domain_field"] is None:
            raise ValueError(f"--domain {domain}: the dataset has no domain_field; use '{ALL}'")
        item_domain, names = item_domains(dataset, config["domain_field"])
        if domain == NEXT:
            target_domain = item_domain[torch.from_numpy(last_items)]
        elif domain in names:
            target_domain = torch.full((len(histories.users),), names.index(domain))
        else:
            raise ValueError(f"--domain {domain}: not a domain of the dataset ({', '.join(names)})")
        # LLMEMF reads a case's target domain from its item field: any item of that domain
        first_item = torch.stack([torch.nonzero(item_domain == d)[0, 0] for d in range(len(names))])
        return cls(last_items, target_domain, first_item, item_domain.to(device))


def chunk_scores(model, dataset, config, histories: Histories, targets: Targets, chunk, device):
    """``[n, n_items]`` scores of the users of ``chunk``: -inf on the padding id, other domains'
    items and each user's own history."""
    from recbole.data.interaction import Interaction

    list_field = dataset.iid_field + config["LIST_SUFFIX"]
    fields = {
        dataset.uid_field: torch.from_numpy(histories.users[chunk]),
        list_field: torch.from_numpy(histories.sequence[chunk]),
        config["ITEM_LIST_LENGTH_FIELD"]: torch.from_numpy(histories.length[chunk]),
        dataset.iid_field: torch.from_numpy(targets.last_items[chunk]),
    }
    if targets.domain is not None:
        fields[dataset.iid_field] = targets.first_item[targets.domain[chunk]]
    n = chunk.stop - chunk.start
    scores = model.full_sort_predict(Interaction(fields).to(device)).view(n, -1).float()
    scores[:, 0] = float("-inf")  # the padding id
    if targets.domain is not None:
        wrong = targets.item_domain[None, :] != targets.domain[chunk].to(device)[:, None]
        scores.masked_fill_(wrong, float("-inf"))
    lo, hi = histories.offsets[chunk.start], histories.offsets[chunk.stop]
    row_of = np.repeat(np.arange(n), np.diff(histories.offsets[chunk.start : chunk.stop + 1]))
    rows, items = torch.from_numpy(row_of), torch.from_numpy(histories.items[lo:hi])
    scores[rows.to(device), items.to(device)] = float("-inf")
    return scores


def _write_rows(file, users, values: torch.Tensor, items: torch.Tensor, item_tokens) -> int:
    """One line per finite score; per user by score, then item id (topk leaves ties unordered)."""
    values, items = values.numpy(), items.numpy()
    lines = []
    for user, row_values, row_items in zip(users, values, items):
        finite = np.isfinite(row_values)
        row_values, row_items = row_values[finite], row_items[finite]
        order = np.lexsort((row_items, -row_values))
        for rank, column in enumerate(order, start=1):
            lines.append(
                f"{user}\t{rank}\t{item_tokens[row_items[column]]}\t{row_values[column]:.6g}\n"
            )
    file.write("".join(lines))
    return len(lines)


def run(args: argparse.Namespace) -> int:
    """``llmemf-recommend`` (its arguments: llmemf_cli/recommend.py)."""
    if args.top_k < 1 or args.chunk_users < 1:
        print("llmemf-recommend: --top-k and --chunk-users must be positive", file=sys.stderr)
        return 2
    from recbole.quick_start import load_data_and_model  # the hook table's: checkpoints read safely

    from recbole_llmemf.utils.errors import UnsafeCheckpointError

    if args.device == "cuda" and not torch.cuda.is_available():
        print("llmemf-recommend: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    device = torch.device(
        "cuda"
        if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    start = time.perf_counter()
    try:
        config, model, dataset, *_ = load_data_and_model(args.checkpoint)
    except UnsafeCheckpointError as error:  # a crafted or damaged file, not a bug of ours
        print(f"llmemf-recommend: {args.checkpoint}: refused: {error}", file=sys.stderr)
        return 1
    load_seconds = time.perf_counter() - start
    try:
        summary = recommend(
            model,
            dataset,
            config,
            args.out,
            top_k=args.top_k,
            domain=args.domain,
            chunk_users=args.chunk_users,
            device=device,
            show_progress=not args.no_progress,
        )
    except ValueError as error:
        print(f"llmemf-recommend: {error}", file=sys.stderr)
        return 2
    peak_gpu = (
        f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
        if device.type == "cuda"
        else ""
    )
    print(
        f"wrote {summary.rows} rows for {summary.users} users to {args.out} in "
        f"{summary.seconds:.1f} s ({summary.users / summary.seconds:.0f} users/s on {device}"
        f"{peak_gpu}) after loading {config['model']} and {config['dataset']} in "
        f"{load_seconds:.1f} s"
    )
    return 0
