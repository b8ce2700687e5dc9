"""Console commands: the installed entry points parse ``--help`` and bad arguments without importing
torch or RecBole, and every option with a default says it."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from importlib import metadata

import pytest

from llmemf_cli import bench, common, data, demo, recommend, run_recbole
from llmemf_cli.data import synthetic
from recbole_llmemf.dataset_tools.synthetic import SyntheticSpec

HEAVY = ("torch", "recbole", "recbole_llmemf", "numpy", "transformers")
ENTRY_POINTS = {"run_recbole", "llmemf-demo", "llmemf-bench", "llmemf-data", "llmemf-recommend"}
COMMAND_LINES = [
    ["run_recbole", "--help"],
    ["llmemf-demo", "--help"],
    ["llmemf-bench", "--help"],
    ["llmemf-data", "--help"],
    ["llmemf-recommend", "--help"],
    *(["llmemf-data", name, "--help"] for name in data.DATA_COMMANDS),
]


def console_scripts() -> dict[str, str]:
    """``name -> "module:function"`` of this distribution's installed console commands."""
    scripts = metadata.distribution("recbole-llmemf").entry_points
    return {ep.name: ep.value for ep in scripts if ep.group == "console_scripts"}


def run_entry_point(command: list[str]) -> dict:
    """Run the installed entry point of ``command[0]`` in a fresh interpreter, as its console
    script does; report its exit status, output and which heavy modules it imported."""
    code = f"""
import contextlib, importlib, io, json, sys
module, function = {console_scripts()[command[0]]!r}.split(":")
sys.argv = {command!r}
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        status = getattr(importlib.import_module(module), function)()
    except SystemExit as exit:
        status = exit.code
heavy = [name for name in {HEAVY!r} if name in sys.modules]
print(json.dumps({{"status": status, "out": out.getvalue(), "heavy": heavy}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_every_command_is_installed_from_the_light_package():
    scripts = console_scripts()
    assert ENTRY_POINTS <= set(scripts)
    assert all(scripts[name].startswith("llmemf_cli.") for name in ENTRY_POINTS)


@pytest.mark.parametrize("command", COMMAND_LINES, ids=" ".join)
def test_help_imports_neither_torch_nor_recbole(command):
    result = run_entry_point(command)
    assert result["status"] in (0, None)
    assert "usage: " + " ".join(command[:-1]) in result["out"]
    assert result["heavy"] == []


@pytest.mark.parametrize(
    "command",
    [
        ["llmemf-data", "features"],  # no dataset folder
        ["llmemf-data", "enrich", "folder", "--backend", "gpt"],
        ["llmemf-demo", "--epochs", "many"],
        ["llmemf-bench"],  # no --dataset
    ],
    ids=" ".join,
)
def test_argument_errors_answer_before_the_heavy_imports(command):
    result = run_entry_point(command)
    assert result["status"] == 2 and "error:" in result["out"]
    assert result["heavy"] == []


def test_unknown_data_command_lists_the_commands(capsys):
    assert data.main(["feature"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'feature'" in err and all(name in err for name in data.DATA_COMMANDS)


def all_parsers() -> list[argparse.ArgumentParser]:
    import importlib

    commands = [run_recbole, demo, bench, recommend]
    commands += [importlib.import_module(f"llmemf_cli.data.{name}") for name in data.DATA_COMMANDS]
    return [command.build_parser() for command in commands]


@pytest.mark.parametrize("parser", all_parsers(), ids=lambda p: p.prog)
def test_every_option_with_a_default_says_it(parser):
    for action in parser._actions:
        if action.default in (None, False, [], argparse.SUPPRESS) or action.help is None:
            continue
        help_text = parser._get_formatter()._expand_help(action)
        assert "default" in help_text, f"{parser.prog} {action.option_strings}: {help_text}"
        if not isinstance(action, argparse.BooleanOptionalAction):
            assert str(action.default) in help_text, f"{parser.prog} {action.option_strings}"
    assert all(action.help for action in parser._actions), parser.prog


def test_parser_defaults_are_the_demo_datasets():
    generated = synthetic.build_parser().parse_args([])
    spec = SyntheticSpec()
    assert (generated.name, generated.users, generated.seed) == (spec.name, spec.n_users, spec.seed)
    assert demo.build_parser().parse_args([]).users == spec.n_users
    assert run_recbole.build_parser().parse_args([]).dataset == spec.name


def test_recommend_domain_words_are_the_commands():
    from recbole_llmemf.quick_start import recommend as command

    assert (recommend.NEXT, recommend.ALL) == (command.NEXT, command.ALL)


def test_demo_help_names_the_metric_it_prints():
    from llmemf_cli.common import DEMO_METRICS

    help_text = demo.build_parser().format_help()
    assert "fullmrr" in DEMO_METRICS and "MRR@10" not in help_text and "fullmrr" in help_text


UPSTREAM_WARNINGS = [
    (
        "A value is trying to be set on a copy of a DataFrame or Series through chained assignment "
        "using an inplace method.",
        FutureWarning,
        "recbole.data.dataset.dataset",
    ),
    (
        "`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use "
        "`torch.amp.GradScaler('cuda', args...)` instead.",
        FutureWarning,
        "recbole.trainer.trainer",
    ),
    ("pkg_resources is deprecated as an API. See ...", UserWarning, "ray._private.parameter"),
]


def test_commands_silence_exactly_recboles_known_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        common.quiet_upstream_warnings()
        for message, category, module in UPSTREAM_WARNINGS:
            warnings.warn_explicit(message, category, f"{module}.py", 1, module=module)
            warnings.warn_explicit(
                message, category, "ours.py", 1, module="recbole_llmemf.model.llmemf"
            )
        warnings.warn_explicit("other", FutureWarning, "x.py", 1, module="recbole.trainer.trainer")
    assert [(str(w.message), w.category) for w in caught] == [
        *((message, category) for message, category, _ in UPSTREAM_WARNINGS),
        ("other", FutureWarning),
    ]


def test_bench_set_is_repeatable():
    args = bench.build_parser().parse_args(["--dataset=d", "--set", "a=1", "--set", "b=2", "c=3"])
    assert args.set == ["a=1", "b=2", "c=3"]
