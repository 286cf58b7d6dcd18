"""What every command module shares: the registry's names for argparse choices, and the
argument types that refuse bad values before any work starts."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from pocketbert.contracts.options import Flag, at_least, foreign_option_error, number  # noqa: F401 (at_least: for the commands)
from pocketbert.errors import PocketbertError



def architecture_names() -> list[str]:
    from pocketbert.models.registry import ARCHITECTURES

    return list(ARCHITECTURES)


def accelerator_names() -> list[str]:
    """What exported files can run on here, from the format plugins (``Format.accelerators``)."""
    from pocketbert.formats import FORMATS

    return sorted({a for fmt in FORMATS.values() for a in fmt.accelerators}, key=lambda a: (a != "cpu", a))


def task_names() -> list[str]:
    from pocketbert.models.registry import TASKS

    return list(TASKS)


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


def _marked(args: argparse.Namespace, kind: type) -> list[str]:
    values = [v for value in vars(args).values() for v in (value if isinstance(value, list) else [value])]
    return [v for v in values if isinstance(v, kind)]


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


def refuse_outputs_over_inputs(args: argparse.Namespace) -> None:
    """No output may be an input, contain one (an output directory is replaced whole), or
    replace a file or folder inside an input directory (``bench CKPT --json CKPT/config.json``
    destroyed the config it had just read). A new file inside an input directory is
    allowed: it takes nothing away."""
    inputs = [place for text in _marked(args, InputPath) for place in _read_places(text)]
    for text in _marked(args, OutputPath):
        out = _real(text)
        for read in inputs:
            replaces_inside = read.is_dir() and read in out.parents and out.exists()
            if out == read or out in read.parents or replaces_inside:
                raise PocketbertError(f"{text}: the output would replace the input {read}; write it elsewhere")


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage mistake as one line (``pocketbert: error: ...``, exit 2) like
    every other error, instead of the usage block followed by the message."""

    def error(self, message: str):
        self.exit(2, f"pocketbert: error: {self.prog}: {message} (see {self.prog} --help)\n")


# ---- a format's own export flags -------------------------------------------------------------
def format_flags() -> list[Flag]:
    """Every registered format's own flags (``Format.option_type``), once each: two formats
    that share an option inherit its one definition."""
    from pocketbert.formats import FORMATS

    found: dict[str, Flag] = {}
    for fmt in FORMATS.values():
        for flag in fmt.option_type.flags():
            if found.setdefault(flag.name, flag) != flag:
                raise PocketbertError(f"format {fmt.name}: {flag.name} is defined otherwise by another format")
    return list(found.values())


def add_format_flags(parser: argparse.ArgumentParser) -> None:
    from pocketbert.formats import FORMATS

    for flag in format_flags():
        owners = [fmt.name for fmt in FORMATS.values() if flag.field in fmt.option_type.field_names()]
        flag.add_to(parser, ", ".join(owners))


def format_options(args: argparse.Namespace, fmt_name: str):
    """The chosen format's own options from the flags given; a flag of another format is
    refused in one line."""
    from pocketbert.formats import FORMATS, get_format

    fmt = get_format(fmt_name)
    given = {flag.field: getattr(args, flag.field) for flag in format_flags() if hasattr(args, flag.field)}
    foreign = [name for name in given if name not in fmt.option_type.field_names()]
    if foreign:
        raise PocketbertError(foreign_option_error(FORMATS.values(), foreign[0]))
    return fmt.option_type(**given)


# ---- where an experiment's jobs run (pocketbert.executor) ---------------------------------------
def add_pool_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=at_least(1), metavar="N",
                       help="run the quality jobs on a private local Ray of N workers (the 'distributed' extra); "
                            "timing still has the machine to itself")
    where.add_argument("--ray", metavar="auto|ADDRESS",
                       help="run the jobs on an existing Ray cluster (see docs/distributed.md)")


def pool_from(args: argparse.Namespace):
    """The executor the options ask for; use it as a context manager (Ray is shut down after)."""
    from pocketbert.executor import executor

    return executor(workers=getattr(args, "workers", None), ray_address=getattr(args, "ray", None))
