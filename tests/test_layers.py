"""The top-level parts form layers: no import cycle between them, function-level imports
included (an import inside a function is still a dependency, only a later one)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from test_architectures_imports import find_cycle  # the same depth-first search for models/

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
# the parts, each a folder (or src/pocketbert module) importable as pocketbert.<part>
PACKAGES = ("models", "contracts", "formats", "quality", "export", "quantize", "benchmarks")
SRC = ROOT / "src" / "pocketbert"
# lowest first: a part may import only parts before it (and the leaf utilities)
LAYERS = ("models", "contracts", "formats", "pipelines", "quality", "export", "benchmarks", "executor", "quantize", "docs",
          "api", "commands", "cli")
LEAVES = {"errors", "atomic", "paths", "quiet", "textfile", "__init__"}


def part_files() -> dict[str, list[Path]]:
    parts = {name: sorted((ROOT / name).rglob("*.py")) for name in PACKAGES}
    empty = [name for name, files in parts.items() if not files]
    # an sdist without the top-level folders gave empty parts, and every check here passed on nothing
    assert not empty, f"parts with no .py files under {ROOT}: {', '.join(f'{name}/' for name in empty)}"
    for package in ("api", "commands", "executor"):  # packages of src/pocketbert itself
        parts[package] = sorted((SRC / package).glob("*.py"))
    for module in SRC.glob("*.py"):
        parts[module.stem] = [module]
    return parts


def imported_parts(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "pocketbert" and len(pieces) > 1:
                found.add(pieces[1])
    return found


def dependencies() -> dict[str, set[str]]:
    parts = part_files()
    return {part: {dep for f in files for dep in imported_parts(f) if dep != part and dep in parts}
            for part, files in parts.items()}


def test_every_part_is_a_package_the_installed_name_reaches():
    for name in PACKAGES:
        assert (ROOT / name / "__init__.py").is_file(), f"{ROOT / name}/ is missing or has no __init__.py"
        # a symlink in a checkout, a copy in an sdist: either way pocketbert.<part> is this folder's code
        reached = sorted(p.relative_to(SRC / name) for p in (SRC / name).rglob("*.py"))
        assert reached == [p.relative_to(ROOT / name) for p in part_files()[name]], f"src/pocketbert/{name} differs from {name}/"


def test_no_import_cycle_between_top_level_parts():
    graph = dependencies()
    assert {"models", "contracts", "formats", "quality", "export", "quantize", "benchmarks", "executor", "api", "commands"} <= set(graph)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_parts_import_only_the_layers_below_them():
    graph = dependencies()
    for part, deps in graph.items():
        if part in LEAVES:
            assert deps <= LEAVES, f"{part} is a leaf utility but imports {sorted(deps - LEAVES)}"
            continue
        below = set(LAYERS[: LAYERS.index(part)]) | LEAVES
        assert deps <= below, f"{part} imports {sorted(deps - below)}, which sit above it"
