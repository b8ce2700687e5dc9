"""What every run of a benchmark shares and what sets each one apart: the shared settings, the
labels (``<Model>-indomain``, LLMEMF's ablations and controls), ``--set`` values, and the effective
config that identifies a run for ``--resume``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

# One setting for every model (the paper's values), so that no model wins by RecBole's per-model
# defaults (SASRec: hidden 64, dropout 0.5; LLMEMF: 256, 0.3). Global ``--set key=value`` replaces
# one for all models, ``--set SASRec.key=value`` for one model or label. A model reads the keys
# it knows (SASRec: hidden_size, inner_size, hidden/attn dropout; GRU4Rec: embedding_size,
# hidden_size, dropout_prob; BPR: embedding_size); the training keys apply to all.
SHARED = {
    "embedding_size": 256,
    "hidden_size": 256,
    "inner_size": 256,
    "dropout_prob": 0.3,
    "hidden_dropout_prob": 0.3,
    "attn_dropout_prob": 0.3,
    "learning_rate": 0.001,
    "train_batch_size": 256,
    "epochs": 100,
    "stopping_step": 10,
}
# Shared keys a model's own yaml tunes instead, unless --set gives them (a fair benchmark may tune
# each model on validation; SASRec's tuned rate is reported beside it: docs/performance.md).
OWN_SETTINGS = {"LLMEMF": ("learning_rate",)}


# "<Model>-indomain": RecBole's CE sequential model trained with the target domain's softmax only
INDOMAIN = "-indomain"
# "<Model>+DMESR": RecBole's sequential model with DMESR's item enhancer (model/dmesr.py), and
# its ablations "<Model>+DMESR-<name>" (properties/model/DMESR.yaml)
ENHANCED = "+DMESR"
DMESR_ABLATIONS = {
    "noalign": {"dmesr_align_weight": 0.0},  # no contrastive alignment
    "llm-only": {"dmesr_fusion": False},  # the LLM views alone, no cross-attention with the title
    "title-only": {"dmesr_views": {"title": "itememb_txtraw"}},  # the original title alone
}


# The paper's ablation (its table: base, +text, +text+LLM, +visual, full)
ABLATIONS = {
    "LLMEMF-ids": {"use_image": False, "use_text": False},
    "LLMEMF-text": {"use_image": False, "text_feature_suffix": "itememb_txtraw"},
    "LLMEMF-text+LLM": {"use_image": False},
    "LLMEMF-image": {"use_text": False},
    "LLMEMF-full": {},
    # Controls: the same missing pattern, each vector moved to another item (what it says is gone)
    "LLMEMF-text-shuffled": {"use_image": False, "shuffled_modalities": ["text"]},
    "LLMEMF-image-shuffled": {"use_text": False, "shuffled_modalities": ["image"]},
}


# ContentCosine's score inside LLMEMF, its scale chosen on validation per domain (content_profile.ContentProfile)
# (over the whole history, as the published rows ran before issue 29 made the domain's the default;
# each label sets every key its published rows ran with that LLMEMF's defaults now set otherwise)
PROFILE = {
    "content_profile_scales": [0, 0.5, 1, 2, 4, 8],
    "content_profile_history": "all",
    "content_profile_cold_offsets": None,
}
# ... and items never a training target scored by the profile alone, its offset chosen with it
COLD_PROFILE = {
    **PROFILE,
    "content_profile_cold_offsets": [-1, -0.5, -0.25, 0, 0.25, 0.5],
    "content_profile_cold_temperatures": None,
    "content_profile_cold_tolerance": 0.0,
}
# ... or trained and never-trained items as two experts normalised per case, the offset their log prior
# (grid around what validation chose on Food-Kitchen's IDs-only weights: 216 settings)
COLD_MIXTURE = {
    "content_profile_history": "all",
    "content_profile_scales": [0, 1, 2, 4],
    "content_profile_cold_offsets": [-5, -4, -3, -2, -1, 0],
    "content_profile_warm_temperatures": [0.4, 0.8, 1.6],
    "content_profile_cold_temperatures": [0.05, 0.1, 0.2],
    "content_profile_cold_tolerance": 0.0,
}
# ... over the target domain's history; the trained expert's temperature below 0.4, which validation
# chose on Food-Kitchen at the edge of the grid above (Kitchen then chose 0.2: 288 settings); with
# cold tolerance 0.01, LLMEMF's defaults since issue 29
DOMAIN_MIXTURE = {
    **COLD_MIXTURE,
    "content_profile_history": "domain",
    "content_profile_warm_temperatures": [0.1, 0.2, 0.4, 0.8],
    "content_profile_cold_tolerance": 0.01,
}
# LLMEMF using content where IDs know little (model/layers.py: ContentOnlyItems); by name only
CONTENT = {
    "LLMEMF-cold-content": {"content_only_below": 1},
    "LLMEMF-cold-content+dropout": {"content_only_below": 1, "id_dropout": 0.2},
    "LLMEMF-rare-content": {"content_only_below": 3},
    "LLMEMF-rare-content+dropout": {"content_only_below": 3, "id_dropout": 0.2},
    "LLMEMF+profile": PROFILE,
    "LLMEMF+profile+cold-content": {**PROFILE, "content_only_below": 1},
    # trained on IDs alone; the text vectors enter at evaluation only, through the profile
    "LLMEMF-ids+text-profile": {
        **ABLATIONS["LLMEMF-ids"],
        **PROFILE,
        "content_profile_modalities": ["text"],
    },
    "LLMEMF+cold-profile": COLD_PROFILE,
    "LLMEMF-ids+text-cold-profile": {
        **ABLATIONS["LLMEMF-ids"],
        **COLD_PROFILE,
        "content_profile_modalities": ["text"],
    },
    "LLMEMF-ids+text-cold-mixture": {
        **ABLATIONS["LLMEMF-ids"],
        **COLD_MIXTURE,
        "content_profile_modalities": ["text"],
    },
    # ... with the profile of the target domain's history items (the first: LLMEMF's default)
    "LLMEMF+domain-profile": {**PROFILE, "content_profile_history": "domain"},
    "LLMEMF+domain-mixture": DOMAIN_MIXTURE,
    "LLMEMF-ids+text-domain-mixture": {
        **ABLATIONS["LLMEMF-ids"],
        **DOMAIN_MIXTURE,
        "content_profile_modalities": ["text"],
    },
}
# ContentCosine of the target domain's history items (model/content_cosine.py)
CONTENT_ONLY = {"ContentCosine-domain": {"content_profile_history": "domain"}}
# LLMEMF as the paper describes it: the package's defaults (issue 28) undone
PAPER = {"LLMEMF-paper": {"learning_rate": 0.001, "content_profile_scales": None}}
# The opt-in sampled softmax (model/sampled_softmax.py) against the exact loss; by name only
SAMPLED_LOSS = {f"LLMEMF+neg{n}": {"loss_negatives": n} for n in (1000, 4000)}
VARIANTS = {**ABLATIONS, **PAPER, **CONTENT, **SAMPLED_LOSS}


# Keys that change what a run shows, not what it computes: a run resumed elsewhere still matches.
DISPLAY_KEYS = {"show_progress"}


def effective_config(config, asked: dict) -> dict:
    """The final value of every shared key, every key asked for and every key of the model's yaml
    (RecBole's and ours, and that of LLMEMF's item enhancer where it has one)."""
    from recbole_llmemf.config.configurator import (
        enhancer_yaml,
        model_yaml_files,
        recbole_model_yaml,
    )

    model = config["model"]
    files = [
        recbole_model_yaml(model),
        *model_yaml_files(model, getattr(config, "model_class", None)),
    ]
    if config["item_enhancer"] is not None:
        files.append(enhancer_yaml(config["item_enhancer"]))
    keys = list(SHARED) + [k for k in asked if k not in SHARED and k not in DISPLAY_KEYS]
    for path in files:
        keys += [k for k in _yaml_keys(path) if k not in keys]
    values = {key: config[key] for key in keys if config[key] is not None}
    return json.loads(json.dumps(values, default=str))


def _yaml_keys(path: Path) -> list[str]:
    import yaml

    return list(yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else []


def effective_config_of(model: str, dataset: str, config: dict, config_files: list[str]) -> dict:
    """The effective config a run of ``model`` would record, read from RecBole's Config alone."""
    from recbole.config import Config

    built = Config(model, dataset, config_file_list=config_files or None, config_dict=config)
    return effective_config(built, config)


def model_specs(models: str, ablations: bool) -> list[tuple[str, str, dict]]:
    names = [name for name in models.split(",") if name]
    specs = [_spec(name) for name in names]
    if ablations:
        specs += [
            (label, "LLMEMF", overrides)
            for label, overrides in ABLATIONS.items()
            if label not in names and (overrides or "LLMEMF" not in names)  # LLMEMF is the full one
        ]
    return specs


def _spec(label: str) -> tuple[str, str, dict]:
    if label in VARIANTS:
        return label, "LLMEMF", VARIANTS[label]
    if label in CONTENT_ONLY:
        return label, "ContentCosine", CONTENT_ONLY[label]
    backbone, enhanced, ablation = label.partition(ENHANCED)
    if enhanced:
        if ablation and ablation[1:] not in DMESR_ABLATIONS:
            known = ", ".join(f"{backbone}{ENHANCED}-{name}" for name in DMESR_ABLATIONS)
            raise SystemExit(f"llmemf-bench: unknown label {label!r}; DMESR's ablations: {known}")
        switches = DMESR_ABLATIONS[ablation[1:]] if ablation else {}
        if backbone == "LLMEMF":  # the enhancer in place of the per-modality adaptors
            adaptors_off = {"item_enhancer": "dmesr", "use_image": False, "use_text": False}
            return label, "LLMEMF", {**adaptors_off, **switches}
        return label, backbone + "DMESR", switches  # SASRec+DMESR: RecBole's SASRec, enhanced
    if label.endswith(INDOMAIN):
        return label, label[: -len(INDOMAIN)], {"train_in_target_domain": True}
    return label, label, {}


def model_config(
    shared: dict, per_model: dict, label: str, model: str, overrides: dict, asked: dict
) -> dict:
    """``shared`` (SHARED with global --set, ``asked``) less the model's :data:`OWN_SETTINGS` that
    --set does not give, then the spec's switches, then ``Model.key`` and ``label.key`` values
    from --set, the most specific last."""
    own = [key for key in OWN_SETTINGS.get(model, ()) if key not in asked]
    kept = {key: value for key, value in shared.items() if key not in own}
    return {**kept, **overrides, **per_model.get(model, {}), **per_model.get(label, {})}


def parse_set(pairs: Sequence[str]) -> tuple[dict, dict]:
    """``KEY=VALUE`` for every model and ``MODEL.KEY=VALUE`` for one model or label."""
    import yaml

    config, per_model = {}, {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"llmemf-bench: --set expects KEY=VALUE, got {pair!r}")
        model, dot, model_key = key.rpartition(".")
        target = per_model.setdefault(model, {}) if dot else config
        target[model_key if dot else key] = yaml.safe_load(value)
    return config, per_model


def config_line(args) -> str:
    """One line: the hyper-parameters every model shares and the per-model exceptions."""
    everyone, per_model = parse_set(args.set)
    shared = {**SHARED, **everyone, **({"epochs": args.epochs} if args.epochs is not None else {})}
    text = "Every model: " + ", ".join(f"{k}={v}" for k, v in shared.items())
    exceptions = [
        f"{m}: its own {k}" for m, keys in OWN_SETTINGS.items() for k in keys if k not in everyone
    ]
    exceptions += [f"{m}.{k}={v}" for m, values in per_model.items() for k, v in values.items()]
    return text + ("; per model: " + ", ".join(exceptions) if exceptions else "") + "."
