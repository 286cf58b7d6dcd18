"""The modules of models/ import each other as a DAG: no cycle, not even through an import
inside a function (which only postpones the cycle to the first call)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

MODELS = Path(__file__).resolve().parents[1] / "models"
PACKAGE = "pocketbert.models"


def module_names() -> set[str]:
    return {path.stem for path in MODELS.glob("*.py")}


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The models/ modules a file imports anywhere (module level or inside functions).

    ``from pocketbert.models import blocks`` imports the submodule ``blocks``;
    ``from pocketbert.models import load_model`` imports the package (``__init__``).
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == PACKAGE:
            targets = [f"{PACKAGE}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets = [node.module]
        elif isinstance(node, ast.ImportFrom):  # relative: from . import x / from .x import y
            base = node.module or ""
            targets = [f"{PACKAGE}.{base}" if base else f"{PACKAGE}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE:
                found.add("__init__")
            elif target.startswith(PACKAGE + "."):
                name = target[len(PACKAGE) + 1 :].split(".")[0]
                found.add(name if name in known else "__init__")
    found.discard(path.stem)
    return found


def import_graph() -> dict[str, set[str]]:
    known = module_names()
    return {path.stem: imported_modules(path, known) for path in MODELS.glob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_models_imports_form_a_dag():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in models/: " + " -> ".join(cycle)


def test_the_checker_sees_function_level_imports_and_cycles(tmp_path):
    (tmp_path / "a.py").write_text("from pocketbert.models import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from pocketbert.models.a import x\n")
    known = {"a", "b"}
    graph = {p.stem: imported_modules(p, known) for p in tmp_path.glob("*.py")}
    assert graph == {"a": {"b"}, "b": {"a"}}
    assert find_cycle(graph) == ["a", "b", "a"]


def test_the_registry_is_above_every_model_file():
    """The model files describe themselves; only the registry (and what sits above it)
    collects them, so a model file never imports the registry or a facade above it."""
    from pocketbert.models import registry

    graph = import_graph()
    above = {"registry", "configs", "tokenizer", "checkpoint", "summary", "__init__"}
    model_files = {module.__name__.rsplit(".", 1)[1] for module in registry.MODULES}
    for name in sorted(model_files | {"modeling", "architecture", "wordpiece", "weights", "hub"}):
        assert not graph[name] & above, (name, graph[name] & above)
