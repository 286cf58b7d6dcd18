"""The ``pocketbert`` command: a thin layer over the library.

Every user mistake surfaces as one line ``pocketbert: error: ...`` and exit code 2
(argparse's convention); warnings print as one line each. Tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from pocketbert import __version__
from pocketbert.commands import bench, create, export, parity, quantize, run
from pocketbert.errors import PocketbertError

EXIT_USAGE = 2


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    export.add_android_assets, bench.add_bench, create.add_create, export.add_export, create.add_info, create.add_models, parity.add_parity,
    quantize.add_quantize, run.add_run, quantize.add_sweep,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pocketbert",
        description="Compact BERTs from PyTorch to the files an Android app ships, with parity and latency checks.",
    )
    parser.add_argument("--version", action="version", version=f"pocketbert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    print(f"pocketbert: warning: {text}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        return args.run(args)
    except PocketbertError as exc:
        print(f"pocketbert: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pocketbert: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
