"""Every quantization recipe, collected from the format plugins (each declares its own in
``Format.recipes``). The CLI, the tests and the docs read ``RECIPES``; a format registered
later (a plugin of the user's) brings its recipes with it, and a user's own recipe for an
existing format can be added with ``RECIPES[name] = recipe``."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from pocketbert.errors import PocketbertError
from pocketbert.formats import FORMATS
from pocketbert.contracts.recipe import Recipe

__all__ = ["RECIPES", "Recipe", "get_recipe"]


class _Recipes(MutableMapping):
    """A live view over the registered formats' recipes, in registration order, then the
    recipes added by name."""

    def __init__(self) -> None:
        self._added: dict[str, Recipe] = {}

    def _all(self) -> dict[str, Recipe]:
        return {**{recipe.name: recipe for fmt in FORMATS.values() for recipe in fmt.recipes}, **self._added}

    def __setitem__(self, name: str, recipe: Recipe) -> None:
        if recipe.format not in FORMATS:
            raise PocketbertError(f"recipe {name}: no format {recipe.format!r} is registered")
        self._added[name] = recipe

    def __delitem__(self, name: str) -> None:
        del self._added[name]

    def __getitem__(self, name: str) -> Recipe:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


RECIPES: MutableMapping[str, Recipe] = _Recipes()


def get_recipe(name: str, fmt: str | None = None) -> Recipe:
    if name not in RECIPES:
        raise PocketbertError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
    recipe = RECIPES[name]
    if fmt is not None and recipe.format != fmt:
        valid = [r.name for r in RECIPES.values() if r.format == fmt]
        raise PocketbertError(f"recipe {name} is for {recipe.format}, not {fmt} (for {fmt}: {', '.join(valid)})")
    return recipe
