"""The folder an importer writes, ``<out>/<name>/``: the atomic files, ``<name>.yaml``, and the
statistics (the paper's Table 1) as ``stats.md`` and ``stats.json``; each file atomically."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from recbole_llmemf.data.fileformat.atomic import atomic_write, write_atomic_file
from recbole_llmemf.data.fileformat.records import (
    CASE_HEADER,
    INTER_HEADER,
    ITEM_COLUMNS,
    SPLITS,
    CrossDomainData,
)

STAT_COLUMNS = (  # key, header
    ("items", "#Items"),
    ("items_used", "#Items used"),
    ("interactions", "#Interactions"),
    ("train", "#Train"),
    ("valid", "#Valid"),
    ("test", "#Test"),
    ("avg_length", "Avg.length"),
)


def compute_stats(data: CrossDomainData) -> dict:
    """The numbers of the paper's Table 1 per domain, and for both domains together."""
    domain_of = {item.token: item.domain for item in data.items}
    users = {user for user, _, _ in data.interactions}
    counts = {domain: Counter() for domain in data.domains}
    for item in data.items:
        counts[item.domain]["items"] += 1
    for item in {item for _, item, _ in data.interactions}:
        counts[domain_of[item]]["items_used"] += 1
    for _, item, _ in data.interactions:
        counts[domain_of[item]]["interactions"] += 1
    for split in SPLITS:
        for case in data.cases[split]:
            counts[domain_of[case.target]][split] += 1
    counts["all"] = sum(counts.values(), Counter())
    table = {
        name: {
            **{key: row[key] for key, _ in STAT_COLUMNS if key != "avg_length"},
            "avg_length": round(row["interactions"] / max(len(users), 1), 2),
        }
        for name, row in counts.items()
    }
    return {
        "name": data.name,
        "domains": list(data.domains),
        "table": table,
        "users": len(users),
        "train_sequences": data.train_sequences,
        "max_len": data.max_len,
        "notes": list(data.notes),
    }


def format_stats(stats: dict) -> str:
    """Markdown table like the paper's Table 1, then its legend and any notes."""
    lines = [
        f"# {stats['name']}",
        "",
        "| Domain | " + " | ".join(header for _, header in STAT_COLUMNS) + " |",
        "|---|" + "---:|" * len(STAT_COLUMNS),
    ]
    for domain, row in stats["table"].items():
        cells = [
            f"{row[key]:.2f}" if key == "avg_length" else f"{row[key]:,}" for key, _ in STAT_COLUMNS
        ]
        lines.append(f"| {domain} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Users: {stats['users']:,}. Training sequences: {stats['train_sequences']:,}. "
        f"Histories keep the last {stats['max_len']} items.",
        "#Items: items of the domain in the .item file; #Items used: with at least one "
        "interaction; #Train / #Valid / #Test: prediction cases (rows of the benchmark files) "
        "whose target is in the domain; Avg.length: interactions of the domain per user.",
    ]
    lines += ["", *(f"**WARNING: {note}**" for note in stats["notes"])] if stats["notes"] else []
    return "\n".join(lines) + "\n"


def dataset_yaml(name: str, max_len: int, tool: str) -> str:
    """The dataset's own config, loaded for every model (recbole_llmemf.config.configurator)."""
    keys = [
        ("USER_ID_FIELD: user_id", "(str) User field of the .inter files."),
        ("ITEM_ID_FIELD: item_id", "(str) Item field; its tokens are Amazon ASINs."),
        ("load_col:", "(dict) Columns RecBole loads; titles stay in the file for the data tools."),
        ("  inter: [user_id, item_id_list, item_id]", ""),
        ("  item: [item_id, domain]", ""),
        ("alias_of_item_id: [item_id_list]", "(list) History tokens share the ids of item_id."),
        (
            "benchmark_filename: [train, valid, test]",
            f"(list) Pre-split files {name}.<part>.inter.",
        ),
        (
            f"MAX_ITEM_LIST_LENGTH: {max_len}",
            f"(int) Longest history; the files keep the last {max_len}.",
        ),
        (
            "domain_field: domain",
            "(str) Item field naming each item's domain (domain-aware evaluation).",
        ),
        ("protocol: full", "(str) Evaluation protocol, a file of properties/protocol/."),
        ("use_image: False", "(bool) No image vectors yet; `llmemf-data features` turns this on."),
        ("use_text: False", "(bool) No text vectors yet; `llmemf-data features` turns this on."),
    ]
    width = max(len(key) for key, _ in keys) + 1
    header = [
        f"# {name}: cross-domain dataset written by `llmemf-data {tool}`; statistics in stats.md.",
        f"# {name}.{{train,valid,test}}.inter: one prediction case per row (history, target).",
        f"# {name}.inter: every interaction, each user's in time order. For RecBole's own",
        "# leave-one-out split on it, pass benchmark_filename: ~, alias_of_item_id: ~ and",
        "# load_col: {inter: [user_id, item_id, timestamp], item: [item_id, domain]}.",
    ]
    body = [f"{key:<{width}}# {comment}" if comment else key for key, comment in keys]
    return "\n".join(header + body) + "\n"


def _timestamp_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def write_dataset(
    data: CrossDomainData, out_dir: str | Path, tool: str, build_info: dict, stats: dict
) -> Path:
    """Write every file of ``<out_dir>/<name>/``, each atomically; the stats and yaml come last."""
    folder = Path(out_dir) / data.name
    columns = ["token", "domain", "title"] + [
        extra
        for extra in ("description", "image_url")
        if any(getattr(i, extra) for i in data.items)
    ]
    write_atomic_file(
        folder / f"{data.name}.item",
        [ITEM_COLUMNS[c] for c in columns],
        ([getattr(item, c) for c in columns] for item in data.items),
    )
    write_atomic_file(
        folder / f"{data.name}.inter",
        INTER_HEADER,
        ((user, item, _timestamp_text(ts)) for user, item, ts in data.interactions),
    )
    for split in SPLITS:
        write_atomic_file(
            folder / f"{data.name}.{split}.inter",
            CASE_HEADER,
            (
                (c.user, " ".join(c.history), c.target, _timestamp_text(c.timestamp))
                for c in tqdm(data.cases[split], desc=f"write {split}", disable=None, leave=False)
            ),
        )
    with atomic_write(folder / "stats.json") as file:
        json.dump({**stats, "build": build_info}, file, indent=2)
        file.write("\n")
    with atomic_write(folder / "stats.md") as file:
        file.write(format_stats(stats))
    with atomic_write(folder / f"{data.name}.yaml") as file:
        file.write(dataset_yaml(data.name, data.max_len, tool))
    return folder
