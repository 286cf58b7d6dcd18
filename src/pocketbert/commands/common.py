"""What every command module shares: the registry's names for argparse choices, and the
argument types that refuse bad values before any work starts."""

from __future__ import annotations

import argparse

# the argument types live in api/checks.py: the Python API checks its arguments with them too
from pocketbert.api.checks import (InputPath, OutputPath, accelerator_names, fraction, input_path,  # noqa: F401
                                   non_negative, output_file, output_path, refuse_overlap, regex, threads)
from pocketbert.contracts.options import Flag, at_least  # noqa: F401 (at_least: for the commands)
from pocketbert.errors import PocketbertError


def architecture_names() -> list[str]:
    from pocketbert.models.registry import ARCHITECTURES

    return list(ARCHITECTURES)


def task_names() -> list[str]:
    from pocketbert.models.registry import TASKS

    return list(TASKS)


# ---- inputs and outputs kept apart (the argument types input_path and output_path mark them) ----
def _marked(args: argparse.Namespace, kind: type) -> list[str]:
    values = [v for value in vars(args).values() for v in (value if isinstance(value, list) else [value])]
    return [v for v in values if isinstance(v, kind)]


def refuse_outputs_over_inputs(args: argparse.Namespace) -> None:
    """A command's marked paths (``input_path``, ``output_path``) checked as ``refuse_overlap``."""
    refuse_overlap(_marked(args, InputPath), _marked(args, OutputPath))


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


def format_flag_values(args: argparse.Namespace) -> dict:
    """The format flags the user gave (a flag not given is absent: ``Flag.add_to``), by
    field; ``api.export`` refuses those of another format."""
    return {flag.field: getattr(args, flag.field) for flag in format_flags() if hasattr(args, flag.field)}


# ---- where an experiment's jobs run (pocketbert.executor) ---------------------------------------
def add_pool_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=at_least(1), metavar="N",
                       help="run the quality jobs on a private local Ray of N workers (the 'distributed' extra); "
                            "timing still has the machine to itself")
    where.add_argument("--ray", metavar="auto|ADDRESS",
                       help="run the jobs on an existing Ray cluster (see docs/distributed.md)")
