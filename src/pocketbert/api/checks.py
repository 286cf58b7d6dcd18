"""The values every entry point refuses before any work: the CLI's argument types and the
Python API's arguments go through the same checks, so both say the same one line."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from pocketbert.contracts.options import at_least, number
from pocketbert.errors import PocketbertError


# ---- argument types: a bad value is refused at parse time, before any work -------------------
# (number and at_least live in contracts/options.py: the format plugins' flags use them too)
def non_negative(text: str) -> float:
    value = number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def max_threads() -> int:
    """More threads than this only oversubscribes the machine (1000 threads on 2 cores
    ran a load average of 181 for minutes): 8 per core, at least 64 (oversubscription
    experiments stay possible, with the harness's warning)."""
    return max(64, 8 * (os.cpu_count() or 1))


def threads(text: str) -> int:
    value = at_least(1)(text)
    if value > max_threads():
        raise argparse.ArgumentTypeError(f"{value} threads on {os.cpu_count()} cores: at most {max_threads()}")
    return value


def regex(text: str) -> str:
    if not text:  # matches every name: the whole model would stay float under an int8 recipe's name
        raise argparse.ArgumentTypeError("an empty pattern matches every layer; name the layers to keep in float")
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression ({exc})") from None
    return text


def output_file(text: str) -> OutputPath:
    """A file pocketbert will write at the end (a report, a plot): checked now, so that
    measuring does not end in "is a directory" or "permission denied"."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file to write")
    parent = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot write in {existing}")
    return OutputPath(text)


# ---- inputs and outputs kept apart ---------------------------------------------------------
class InputPath(str):
    """A path a command reads (checkpoint, artifact, model file, text): the argument type
    ``input_path`` marks it, so one check covers every command's outputs against it."""


class OutputPath(str):
    """A path a command writes (an output directory, a report, a plot)."""


def input_path(text: str) -> InputPath:
    return InputPath(text)


def output_path(text: str) -> OutputPath:
    """An output directory (or a file some modes write): checked against the inputs only."""
    return OutputPath(text)


def _real(text: str) -> Path:
    """The path with every link followed; Path.resolve raises on a link loop, realpath keeps it."""
    return Path(os.path.realpath(text))


def _read_places(text: str) -> list[Path]:
    """An input and what is read with it: a model file inside an export is read with the
    export's manifest, config and vocabulary."""
    from pocketbert.contracts.artifact import is_artifact

    path = _real(text)
    if path.is_file() and is_artifact(path.parent):
        return [path, path.parent]
    return [path]


def refuse_overlap(inputs: list[str], outputs: list[str]) -> None:
    """No output may be an input, contain one (an output directory is replaced whole), or
    replace a file or folder inside an input directory (``bench CKPT --json CKPT/config.json``
    destroyed the config it had just read). A new file inside an input directory is
    allowed: it takes nothing away."""
    read_places = [place for text in inputs for place in _read_places(str(text))]
    for text in outputs:
        out = _real(text)
        for read in read_places:
            replaces_inside = read.is_dir() and read in out.parents and out.exists()
            if out == read or out in read.parents or replaces_inside:
                raise PocketbertError(f"{text}: the output would replace the input {read}; write it elsewhere")


def accelerator_names() -> list[str]:
    """What exported files can run on here, from the format plugins (``Format.accelerators``)."""
    from pocketbert.formats import FORMATS

    return sorted({a for fmt in FORMATS.values() for a in fmt.accelerators}, key=lambda a: (a != "cpu", a))


# ---- the Python API's arguments, through the same checks ------------------------------------------
def checked(name: str, value, check):
    """``value`` as the CLI's argument type ``check`` takes it, or the same refusal as one
    line naming the argument; None stays None (the default)."""
    if value is None:
        return None
    try:
        return check(str(value))
    except argparse.ArgumentTypeError as exc:
        raise PocketbertError(f"{name}: {exc}") from None


def positive(name: str, value):
    return checked(name, value, at_least(1))
