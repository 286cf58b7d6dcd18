"""The docs and help texts follow the registries: a format, recipe, architecture or
top-level folder added without the docs following fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pocketbert import docs
from pocketbert.cli import build_parser
from pocketbert.formats import FORMATS, suffixes
from pocketbert.models.registry import ARCHITECTURES
from pocketbert.quantize.recipes import RECIPES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def help_of(command: str) -> str:
    import os

    os.environ["COLUMNS"] = "10000"  # argparse wraps at hyphens: recipe names would break
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return " ".join(sub.choices[command].format_help().split())


def test_registry_doc_is_current():
    assert docs.DOC.read_text(encoding="utf-8") == docs.render(), "run: python -m pocketbert.docs"


def test_readme_layout_lists_every_top_level_folder():
    layout = README[README.index("## Layout"):]
    layout = layout[: layout.index("\n## ", 3)]
    folders = [p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
               and p.name not in ("src", "out", "build") and not p.name.endswith(".egg-info")]
    for folder in folders:
        assert re.search(rf"^{folder}/", layout, re.M), f"README layout omits {folder}/"


def test_readme_names_every_format_and_points_to_the_registry_doc():
    assert "docs/registry.md" in README
    for name in FORMATS:
        assert f"--format {name}" in README, f"README shows no --format {name}"


def test_help_texts_list_every_format_suffix_recipe_and_architecture():
    bench, export, quantize, create = (help_of(c) for c in ("bench", "export", "quantize", "create"))
    for suffix in suffixes():
        assert suffix in bench, f"bench --help omits {suffix}"
    for name in FORMATS:
        assert f"{name}:" in export, f"export --help omits {name}"
    for name in RECIPES:
        assert name in quantize, f"quantize --help omits {name}"
    for name in ARCHITECTURES:
        assert name in create
