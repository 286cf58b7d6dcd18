"""A format's own export options and the CLI flags that set them.

Each format plugin declares one frozen dataclass (``Format.option_type``) for the options
only it has (ONNX's opset, LiteRT's accelerator ...), and each field's flag (``Flag``). The
export command collects the flags of every registered format and refuses one that belongs to
another format than the one chosen; the shared ``ExportOptions`` carries the object as one
typed field. Two formats that share an option (one signature per bucket length) inherit it
from one base class here, so its flag is defined once.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar


# ---- argument types: a bad value is refused at parse time, before any work -------------------
def number(text: str, kind: type):
    """``text`` as an int or a finite float, or an argparse error naming it."""
    import math

    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer >= ``minimum``."""
    def parse(text: str) -> int:
        value = number(text, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


# ---- flags ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Flag:
    """The CLI flag of one option field. ``keywords`` holds ``add_argument``'s keywords
    (type, nargs, action, metavar ...); ``deprecated`` are old spellings still accepted,
    each announced by one line on stderr."""

    field: str
    help: str
    keywords: dict[str, Any] = field(default_factory=dict)
    deprecated: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def switch(self) -> bool:
        return self.keywords.get("action") == "store_true"

    def add_to(self, parser: argparse.ArgumentParser, help_prefix: str) -> None:
        """Add the flag (and its old spellings) with no default: a flag the user did not
        give is absent from the parsed namespace, so an absent one is never refused."""
        parser.add_argument(self.name, dest=self.field, default=argparse.SUPPRESS, help=f"{help_prefix}: {self.help}",
                            **self.keywords)
        for old in self.deprecated:
            parser.add_argument(old, dest=self.field, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                                action=deprecated_alias(old, self.name), **{k: v for k, v in self.keywords.items()
                                                                           if k != "action"})


def deprecated_alias(old: str, new: str) -> type[argparse.Action]:
    """An argparse action for ``old``, an old spelling of ``new``: stores the value and
    says so in one line on stderr."""
    class Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"pocketbert: deprecated: {old} is now {new} (the old spelling goes in a later release)",
                  file=sys.stderr)
            setattr(namespace, self.dest, values)
    return Deprecated


# ---- option types --------------------------------------------------------------------------
@dataclass(frozen=True)
class FormatOptions:
    """Base of every format's own export options; a format without any uses it as is.
    ``FLAGS`` names the CLI flag of each field (a subclass adds its own to its bases')."""

    FLAGS: ClassVar[tuple[Flag, ...]] = ()

    @classmethod
    def flags(cls) -> tuple[Flag, ...]:
        seen: dict[str, Flag] = {}
        for klass in reversed(cls.__mro__):
            for flag in vars(klass).get("FLAGS", ()):
                seen[flag.field] = flag
        return tuple(seen.values())

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def non_default(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) != f.default]


@dataclass(frozen=True)
class BucketedOptions(FormatOptions):
    """Formats that write one static signature (method) per sequence length, weights shared."""

    seq_lens: tuple[int, ...] = ()

    FLAGS: ClassVar[tuple[Flag, ...]] = (
        Flag("seq_lens", "one file with a static signature (method) per length (seq_16, seq_32 ...; weights shared); "
                         "runners and pipelines pad a sentence to the smallest that fits, e.g. 16 32 64 128 256 384",
             {"nargs": "+", "type": at_least(1), "metavar": "N"}),
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "seq_lens", tuple(self.seq_lens))


@dataclass(frozen=True)
class AcceleratorOptions(FormatOptions):
    """Formats that export a graph for a named accelerator (``Format.accelerator_recipes``),
    proven afterwards by that accelerator's checks."""

    accelerator: str = ""  # "" = no accelerator asked for

    FLAGS: ClassVar[tuple[Flag, ...]] = (
        Flag("accelerator", "export the graph this accelerator takes (its recipe applied) and prove it by that "
                            "accelerator's checks of pocketbert inspect: refused (nothing left) when a check that "
                            "ran says it is not fully taken", {"metavar": "ACCELERATOR"}, deprecated=("--target",)),
    )


def owners(formats, name: str) -> list:
    """The formats among ``formats`` whose options have the field ``name``."""
    return [fmt for fmt in formats if name in fmt.option_type.field_names()]


def foreign_option_error(formats, name: str) -> str:
    """One line for an option of another format: a switch is named with every switch of
    its format ("--ort and --optimize apply to --format onnx only")."""
    found = owners(formats, name)
    flags = {flag.field: flag for fmt in found for flag in fmt.option_type.flags()}
    named = [flag.name for flag in found[0].option_type.flags() if flag.switch] if found and flags[name].switch \
        else [flags[name].name if name in flags else "--" + name.replace("_", "-")]
    verb = "apply" if len(named) > 1 else "applies"
    return f"{' and '.join(named)} {verb} to --format {' or '.join(fmt.name for fmt in found)} only"
