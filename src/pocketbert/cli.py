"""The ``pocketbert`` command: a thin layer over the library.

Every user mistake surfaces as one line ``pocketbert: error: ...`` and exit code 2
(argparse's convention); warnings print as one line each. Tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import errno
import functools
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence

from pocketbert import __version__
from pocketbert import atomic
from pocketbert.atomic import Terminated, is_disk_full, request_termination
from pocketbert.commands.common import OneLineParser, refuse_outputs_over_inputs
from pocketbert.errors import PocketbertError

EXIT_USAGE = 2


def commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Each command's parser builder. Imported when the parser is built, inside main's
    signal handling: the commands pull in torch (2 s), and a Ctrl-C during that import
    was a traceback."""
    from pocketbert.commands import bench, create, export, inspect, parity, quantize, run

    return [export.add_android_assets, bench.add_bench, create.add_create, export.add_export, create.add_info,
            create.add_models, inspect.add_inspect, parity.add_parity, quantize.add_quantize, run.add_run,
            quantize.add_sweep]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="pocketbert",
        description="Compact BERTs from PyTorch to the files an Android app ships, with parity and latency checks.",
    )
    parser.add_argument("--version", action="version", version=f"pocketbert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in commands():
        add(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    print(f"pocketbert: warning: {text}", file=file or sys.stderr)


# what a user's paths and disks cause (read-only, full, missing, not a directory ...)
USER_OS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR,
                  errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}


def _os_error_line(exc: OSError) -> str:
    """A failed write or read as the user can act on it: the path and the reason."""
    where = f"{exc.filename}: " if exc.filename else ""
    if is_disk_full(exc):
        return f"{where}no space left on the device (the partial output was removed)"
    return f"{where}{exc.strerror or exc}"


def _stopped(raised: int = 0) -> int:
    """SIGTERM or Ctrl-C, however the command ended after it (unwound, or a library swallowed
    it or turned it into its own error): never a success, and the line says which (the signal
    that arrived; ``raised`` for an interrupt that did not pass our handler)."""
    if (atomic.requested_signal() or raised) == signal.SIGTERM:
        print("pocketbert: terminated (SIGTERM); partial outputs removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    print("pocketbert: interrupted", file=sys.stderr)
    return 128 + signal.SIGINT


# SIGINT's handler first: a process that catches SIGTERM (what a supervisor, or a test reading
# /proc/PID/status, can see from outside) then catches Ctrl-C too; the other order left a
# window in which Ctrl-C hit Python's default handler before the try (a traceback, exit -2)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _drop_lost_interrupts(unraisable, print_others) -> None:
    """An interrupt raised where Python cannot pass it on (jax's garbage-collector callback, a
    ``__del__``) is printed as "Exception ignored" with a traceback; the request is remembered
    and acted on (``_stopped``), so it prints nothing."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        print_others(unraisable)


def _reader_gone() -> int:
    """``pocketbert run ... | head -1``: the reader closed the pipe, which is its choice.
    Stop quietly, with the status a Unix tool killed by SIGPIPE has; stdout goes to
    /dev/null so that the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a descriptor (captured in tests)
        pass
    return 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    atomic.clear_termination_request()
    previous = {signum: signal.signal(signum, request_termination) for signum in STOP_SIGNALS}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_drop_lost_interrupts, print_others=previous_hook)
    try:
        # the imports finish before a stop unwinds: Python 3.11's exec() of a string (every
        # dataclass's generated methods) marks an interrupt raised inside it as unhandled for
        # good, and the process killed itself with SIGINT after printing the stop (exit -2)
        with atomic.termination_deferred():
            parser = build_parser()
        args = parser.parse_args(argv)
        warnings.showwarning = _one_line_warning
        refuse_outputs_over_inputs(args)
        status = args.run(args)
        if atomic.termination_requested():  # swallowed by a library: still not a success
            return _stopped()
        return status
    except PocketbertError as exc:
        if atomic.termination_requested():  # a library turned the signal into its own error
            return _stopped()
        print(f"pocketbert: error: {_shorten(' '.join(str(exc).split()))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # before OSError, which it is
        return _reader_gone()
    except OSError as exc:
        if atomic.termination_requested():
            return _stopped()
        if exc.errno not in USER_OS_ERRORS:
            raise  # a bug, with its traceback
        print(f"pocketbert: error: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or Terminated (SIGTERM)
        return _stopped(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    except Exception:
        # the interrupt raised inside a C extension's import comes back as that import's
        # error (numpy: "PyCapsule_Import could not import module datetime"): still a stop
        if atomic.termination_requested():
            return _stopped()
        raise  # a bug, with its traceback
    finally:
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


MAX_ERROR_CHARS = 600


def _shorten(line: str) -> str:
    """An error that echoes the input stays one readable line (1 MB of input is not)."""
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 20] + f"... ({len(line)} chars)"


if __name__ == "__main__":
    sys.exit(main())
