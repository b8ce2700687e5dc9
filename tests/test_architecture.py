"""The layers hold as contracts: imports run one way (the console commands above the tools and the
benchmark, both above the core), no module imports itself back through others, modules and
functions stay small, and only the hook table changes RecBole."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# where each package's source lies (setup.py maps two of them into recbole_llmemf)
SOURCES = {
    "recbole_llmemf": ROOT / "recbole_llmemf",
    "recbole_llmemf.dataset_tools": ROOT / "dataset_tools",
    "llmemf_cli": ROOT / "llmemf_cli",
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def layer(module: str) -> str:
    if module.startswith("llmemf_cli"):
        return "cli"
    if module.startswith("recbole_llmemf.dataset_tools"):
        return "tools"
    if module.startswith("recbole_llmemf.bench"):
        return "bench"
    return "core"


# which layers each layer may import
ALLOWED = {
    "cli": {"cli", "tools", "bench", "core"},
    "tools": {"tools", "core"},
    "bench": {"bench", "core"},
    "core": {"core"},
}


def imports(path: Path, known: set[str]) -> set[str]:
    """Our modules that ``path`` imports anywhere in it (top level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in known}


GRAPH = {name: imports(path, set(modules())) - {name} for name, path in modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_one_way(module):
    wrong = {m for m in GRAPH[module] if layer(m) not in ALLOWED[layer(module)]}
    assert not wrong, f"{module} ({layer(module)}) imports {sorted(wrong)}"


def test_no_module_imports_itself_back():
    """No cycle among our modules, the package's own ``__init__`` aside (importing any submodule
    runs it, so an edge to it says nothing about layering)."""
    graph = {m: {n for n in targets if n != "recbole_llmemf"} for m, targets in GRAPH.items()}
    done, path = set(), []

    def visit(module: str) -> None:
        if module in path:
            raise AssertionError(" -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        path.append(module)
        for target in sorted(graph[module]):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_modules_and_functions_are_small(module):
    path = modules()[module]
    source = path.read_text(encoding="utf-8")
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path}: {source.count(chr(10))} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            declarative = node.name == "build_parser"  # argparse declarations, one per option
            assert declarative or length <= MAX_FUNCTION_LINES, f"{path}:{node.lineno} {node.name}"


def recbole_names(tree: ast.Module) -> set[str]:
    """Names bound to RecBole's modules or objects by the module's imports."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(
                (a.asname or a.name).split(".")[0]
                for a in node.names
                if a.name.startswith("recbole.") or a.name == "recbole"
            )
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "recbole":
            names.update(a.asname or a.name for a in node.names)
    return names


def root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


@pytest.mark.parametrize("module", sorted(set(GRAPH) - {"recbole_llmemf.hooks"}))
def test_only_the_hook_table_changes_recbole(module):
    """No assignment to, ``setattr`` on or ``sys.modules`` entry for anything of RecBole's outside
    hooks.py (a subclass of a RecBole class is not a change to it)."""
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
    ours = recbole_names(tree)
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            targets = [t for t in targets if isinstance(t, (ast.Attribute, ast.Subscript))]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr":
            targets = node.args[:1]
        for target in targets:
            root = root_name(target)
            assert root not in ours, f"{module}:{node.lineno} changes RecBole's {root}"
            assert not (root == "sys" and "modules" in ast.unparse(target)), (
                f"{module}:{node.lineno} adds to sys.modules"
            )
