"""The hook table: every row is installed on import, says what turns it on and why, and
``uninstall`` gives RecBole back its own attributes, modules and tables."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from recbole_llmemf import hooks

# In a fresh interpreter: which rows are in place after import, after uninstall, after install.
SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys
    from recbole_llmemf import hooks

    def in_place(hook):
        if hook.kind == "call":
            return None
        value = hooks._resolve(hook.hook)
        if hook.target.startswith("sys.modules:"):  # registered, and importing it gives ours
            alias = hook.target.partition(":")[2]
            if alias not in hooks._ALIASES.modules:
                return sys.modules.get(alias) is value
            return importlib.import_module(alias) is value
        if hook.kind == "item":
            table, _, key = hook.target.rstrip("]").partition("[")
            return hooks._resolve(table).get(key) is value
        owner, name = hooks._owner_and_name(hook.target)
        current = getattr(owner, name, None)
        return getattr(current, "__llmemf_hook__", current) is value

    def known(name):
        from recbole.utils import get_model
        try:
            return get_model(name).__name__
        except Exception as error:
            return type(error).__name__

    states = {"imported": [in_place(h) for h in hooks.HOOKS], "LLMEMF": [known("LLMEMF")]}
    hooks.uninstall()
    states["uninstalled"] = [in_place(h) for h in hooks.HOOKS]
    states["LLMEMF"].append(known("LLMEMF"))
    hooks.install()
    hooks.install()  # twice: nothing more
    states["installed"] = [in_place(h) for h in hooks.HOOKS]
    states["LLMEMF"].append(known("LLMEMF"))
    print(json.dumps(states))
    """
)


def test_install_uninstall_install():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    states = json.loads(done.stdout.splitlines()[-1])
    rows = [h for h in hooks.HOOKS if h.kind != "call"]
    assert len(rows) > 20
    expected = [None if h.kind == "call" else True for h in hooks.HOOKS]
    assert states["imported"] == expected == states["installed"]
    assert states["uninstalled"] == [None if h.kind == "call" else False for h in hooks.HOOKS]
    assert states["LLMEMF"] == ["LLMEMF", "ModuleNotFoundError", "LLMEMF"]


def test_importing_the_plugin_imports_none_of_recboles_sequential_models():
    """Their package turns autograd's anomaly detection on (sine.py L25): a plugin that imported
    it would slow every user's training and add a warning."""
    script = (
        "import sys, torch, recbole_llmemf\n"
        "print(torch.is_anomaly_enabled(), 'recbole.model.sequential_recommender' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]


def test_every_row_names_its_switch_the_recbole_code_and_why():
    for hook in hooks.HOOKS:
        assert hook.kind in ("wrap", "set", "item", "call"), hook
        assert hook.on and hook.protects and len(hook.why) > 20, hook
    targets = [(h.target, h.kind) for h in hooks.HOOKS]
    assert len(targets) == len(set(targets)), "a target hooked twice"
