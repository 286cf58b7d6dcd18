"""What every command module shares: the registry's names for argparse choices, and the
argument types that refuse bad values before any work starts."""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path


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
def _number(text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def at_least(minimum: int):
    """An integer >= ``minimum``."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def non_negative(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = _number(text, float)
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
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression ({exc})") from None
    return text


def output_file(text: str) -> str:
    """A file pocketbert will write at the end (a report, a plot): checked now, so that
    measuring does not end in "is a directory" or "permission denied"."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file to write")
    parent = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot write in {existing}")
    return text


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage mistake as one line (``pocketbert: error: ...``, exit 2) like
    every other error, instead of the usage block followed by the message."""

    def error(self, message: str):
        self.exit(2, f"pocketbert: error: {self.prog}: {message} (see {self.prog} --help)\n")


def opset(text: str) -> int:
    """ONNX opsets the exporters write and onnxruntime runs (no silent fallback to 18)."""
    value = _number(text, int)
    if not 17 <= value <= 21:
        raise argparse.ArgumentTypeError(f"opset {value} is not supported (17 to 21)")
    return value
