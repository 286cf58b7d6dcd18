"""Every quantization recipe, collected from the format plugins (each declares its own in
``Format.recipes``). The CLI, the tests and the docs read ``RECIPES``; a format registered
later (a plugin of the user's) brings its recipes with it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pocketbert.errors import PocketbertError
from pocketbert.formats import FORMATS
from pocketbert.runtime.recipe import Recipe

__all__ = ["RECIPES", "Recipe", "get_recipe"]


class _Recipes(Mapping):
    """A live view over the registered formats' recipes, in registration order."""

    def _all(self) -> dict[str, Recipe]:
        return {recipe.name: recipe for fmt in FORMATS.values() for recipe in fmt.recipes}

    def __getitem__(self, name: str) -> Recipe:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


RECIPES: Mapping[str, Recipe] = _Recipes()


def get_recipe(name: str, fmt: str | None = None) -> Recipe:
    if name not in RECIPES:
        raise PocketbertError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
    recipe = RECIPES[name]
    if fmt is not None and recipe.format != fmt:
        valid = [r.name for r in RECIPES.values() if r.format == fmt]
        raise PocketbertError(f"recipe {name} is for {recipe.format}, not {fmt} (for {fmt}: {', '.join(valid)})")
    return recipe
