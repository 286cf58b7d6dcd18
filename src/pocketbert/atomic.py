"""Write files and directories so that a failure never leaves a half-written result.

Everything is built under a hidden temporary name beside the target and renamed into
place at the end (a rename within one filesystem is atomic). Temporary names carry the
process id, so the leftovers of a process that was killed (kill -9, a power cut) are
recognised and removed by the next pocketbert that writes there. A lock file beside the
target keeps two processes from writing the same output: the second is refused at once,
instead of both finishing and one silently replacing the other. A set of files that shares
its directory with other files (an app's assets) is staged inside that directory and swapped
in as one unit, the lock inside it too (atomic_files).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pocketbert.errors import PocketbertError

WORK_PREFIX = "pocketbert-"  # private work directories in TMPDIR: pocketbert-KIND-PID-xxxx


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _chmod_like_new(path: Path, mode: int) -> None:
    """mkdtemp/mkstemp create private (0700/0600) entries; give the result normal modes."""
    os.chmod(path, mode & ~_umask())


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _remove_stale(directory: Path, pattern: re.Pattern[str]) -> None:
    """Remove entries of ``directory`` whose name matches ``pattern`` (group "pid") and
    whose process is gone."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and not _alive(int(match.group("pid"))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def refuse_existing(target: str | Path, force: bool, protect: Iterable[str | Path] = ()) -> None:
    """The checks atomic_directory makes, for callers that want them before slow work: an
    existing output needs ``force``, and no output may replace a directory the work reads
    from (``protect``: the source checkpoint) or the working directory itself."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise PocketbertError(f"{target}: exists and is not a directory")
    resolved = target.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise PocketbertError(f"{target}: is the working directory or one of its parents; write the output elsewhere")
    for source in protect:
        source = Path(source).resolve()
        if resolved == source or resolved in source.parents:
            raise PocketbertError(f"{target}: the output would replace the input {source}; choose another -o")
    if _is_nonempty_dir(target) and not force:
        raise PocketbertError(f"{target}: already exists and is not empty (use --force to replace it)")


@contextlib.contextmanager
def _output_lock(target: Path, lock: Path | None = None) -> Iterator[None]:
    """Hold ``lock`` (default ``.NAME.lock`` beside ``target``; its content: our pid) for the
    block; a lock whose process is gone is taken over."""
    lock = lock or target.with_name(f".{target.name}.lock")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _alive(holder):
                raise PocketbertError(f"{target}: another pocketbert process (pid {holder}) is writing it "
                                      f"(if none is, remove {lock})") from None
            lock.unlink(missing_ok=True)  # left by a process that is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise PocketbertError(f"{target}: cannot take its lock file {lock}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM (CI timeouts, ``kill``): unwinds like Ctrl-C, so every atomic output and
    work directory is removed on the way out."""


_requested_signal = 0  # SIGTERM or SIGINT once one arrived: the command must not succeed
_deferring = 0  # depth of termination_deferred blocks


def _stop_exception() -> KeyboardInterrupt:
    return Terminated() if _requested_signal == signal.SIGTERM else KeyboardInterrupt()


def request_termination(signum: int = signal.SIGTERM, frame=None) -> None:
    """The SIGTERM and SIGINT (Ctrl-C) handler: remember the signal, then unwind (at the end
    of a ``termination_deferred`` block, inside one). Remembering is what makes it stick: the
    exception a handler raises can be lost (a converter's ``except BaseException``; jax's
    garbage-collector callback, in which Python prints and drops any exception, so a Ctrl-C that
    lands in it was swallowed and the export went on to exit 0), and every commit checks the
    flag first, so the output never appears anyway and the command does not report success."""
    global _requested_signal
    _requested_signal = signum
    if not _deferring:
        raise _stop_exception()


@contextlib.contextmanager
def termination_deferred() -> Iterator[None]:
    """SIGTERM and Ctrl-C wait for the end of the block, then unwind as usual. For imports of
    native libraries (litert-torch pulls jax, torchao, TensorFlow's runtime): the exception raised
    into a C extension's initialisation aborted the process (SIGABRT: no cleanup, no message; 1 in
    12 SIGTERMs of an export here), or a library's import guard turned it into an ImportError, or
    a callback swallowed it."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    _not_terminated()


def termination_requested() -> bool:
    return bool(_requested_signal)


def requested_signal() -> int:
    """The signal that stopped the command (0: none)."""
    return _requested_signal


def clear_termination_request() -> None:
    """A new command in the same process (tests run several) starts without an old request."""
    global _requested_signal
    _requested_signal = 0


def _not_terminated() -> None:
    if _requested_signal:
        raise _stop_exception()


@contextlib.contextmanager
def atomic_directory(target: str | Path, force: bool = False, protect: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``target`` if the block succeeds.

    An existing non-empty ``target`` is refused unless ``force``; with ``force`` it is
    replaced only after the new one is complete. The existence check is made again under
    the lock just before the rename, so an output that appeared meanwhile is not replaced.
    """
    target = Path(target)
    protect = tuple(protect)
    refuse_existing(target, force, protect)
    target.parent.mkdir(parents=True, exist_ok=True)
    name = re.escape(target.name)
    _remove_stale(target.parent, re.compile(rf"\.{name}\.(?P<pid>\d+)\..*\.tmp"))
    for old in target.parent.glob(f".{target.name}.old-*"):  # a process killed between its two renames
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            if target.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(old, target)  # the only copy of the previous output: put it back
    with _output_lock(target):
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
        try:
            with _disk_full_names(target):
                yield tmp
            _not_terminated()
            refuse_existing(target, force, protect)
            _chmod_like_new(tmp, 0o777)
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in target's directory that replaces ``target`` on success."""
    target = Path(target)
    if target.is_dir():
        raise PocketbertError(f"{target}: is a directory, not a file to write")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target.parent, re.compile(rf"\.{re.escape(target.name)}\.(?P<pid>\d+)\..*\.tmp"))
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with _disk_full_names(target):
            yield tmp
        _not_terminated()
        _chmod_like_new(tmp, 0o666)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


FILE_SET = ".pocketbert-files"  # in a directory atomic_files writes into: FILE_SET.lock, FILE_SET.PID.xxxx.tmp


def refuse_existing_files(directory: str | Path, names: Iterable[str], force: bool) -> None:
    """The checks atomic_files makes, for callers that want them before slow work:
    ``directory`` must be one (or not exist yet), nothing but a file may stand at a name of
    the set, and files of the set already there need ``force``."""
    directory = Path(directory)
    blocking = next((p for p in (directory, *directory.parents) if p.exists() or p.is_symlink()), None)
    if blocking is not None and not blocking.is_dir():
        raise PocketbertError(f"{directory}: {'' if blocking == directory else f'{blocking} '}exists and is not "
                              "a directory")
    present = [name for name in names if (directory / name).exists() or (directory / name).is_symlink()]
    for name in present:
        if (directory / name).is_dir():
            raise PocketbertError(f"{directory / name}: a directory stands where the file {name} goes")
    if present and not force:
        raise PocketbertError(f"{directory}: already holds {', '.join(present)} (use --force to replace them)")


@contextlib.contextmanager
def atomic_files(directory: str | Path, names: Iterable[str], force: bool = False) -> Iterator[Path]:
    """Yield an empty staging directory; the files ``names`` written there replace those of
    ``directory`` together when the block succeeds, and no other file of ``directory`` is
    touched (an app's assets directory holds the app's own files too).

    The staging directory is inside ``directory`` (same filesystem: every move is a rename),
    under a lock there; the checks of refuse_existing_files are made again under the lock. The
    swap moves each old file aside, then the new one in, with signals held back; if a move
    fails every name gets its old file back, so ``directory`` holds the old set or the new
    one, never a mix (kill -9 between two of those renames excepted). A full disk while
    staging is reported on ``directory``, not on the hidden staging name (or on no name at
    all, as a failed copy reports it).
    """
    directory = Path(directory)
    names = tuple(names)
    refuse_existing_files(directory, names, force)
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale(directory, re.compile(rf"{re.escape(FILE_SET)}\.(?P<pid>\d+)\..*\.tmp"))
    with _output_lock(directory, lock=directory / f"{FILE_SET}.lock"):
        stage = Path(tempfile.mkdtemp(prefix=f"{FILE_SET}.{os.getpid()}.", suffix=".tmp", dir=directory))
        try:
            with _disk_full_names(directory):
                yield stage
            _not_terminated()
            refuse_existing_files(directory, names, force)
            with termination_deferred():
                _swap_in(stage, directory, names)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, directory: Path, names: tuple[str, ...]) -> None:
    """Move ``stage/NAME`` to ``directory/NAME`` for every name, the old files aside into
    ``stage``; on any failure put every old file back."""
    old = stage / f"{FILE_SET}.old"
    old.mkdir()
    moved_aside, placed = [], []
    try:
        for name in names:
            _chmod_like_new(stage / name, 0o666)
            if (directory / name).exists() or (directory / name).is_symlink():
                os.replace(directory / name, old / name)
                moved_aside.append(name)
            os.replace(stage / name, directory / name)
            placed.append(name)
    except BaseException:
        for name in placed:
            (directory / name).unlink(missing_ok=True)
        for name in moved_aside:
            os.replace(old / name, directory / name)
        raise


def remove_stale_work() -> None:
    """The work directories of pocketbert processes that are gone (killed workers included)."""
    _remove_stale(Path(tempfile.gettempdir()), re.compile(rf"{WORK_PREFIX}[a-z]+-(?P<pid>\d+)-.*"))


@contextlib.contextmanager
def work_directory(kind: str) -> Iterator[Path]:
    """A private directory in TMPDIR for intermediate files (float exports, candidates),
    removed afterwards, also after SIGTERM; those of killed processes are removed first.
    Libraries that make their own temporary files meanwhile (onnxruntime's quantizer) make
    them inside it, so nothing of theirs is left in TMPDIR either."""
    remove_stale_work()
    saved = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix=f"{WORK_PREFIX}{kind}-{os.getpid()}-") as work:
        tempfile.tempdir = work
        try:
            yield Path(work)
        finally:
            tempfile.tempdir = saved


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def _disk_full_names(output: Path) -> Iterator[None]:
    """A full disk while an output is written is reported against the output the user named,
    not the hidden temporary file it hit (or no file at all: a library's own write)."""
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc):
            raise OSError(exc.errno, os.strerror(exc.errno), str(output)) from None
        raise


def check_free_space(target: str | Path, needed_bytes: int, what: str) -> None:
    """Refuse work whose output cannot fit where it goes, before it starts: a full disk
    part-way through aborts some converters in C++ (no cleanup, no message) and leaves the
    disk full."""
    path = Path(target).resolve()
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    if needed_bytes > free:
        raise PocketbertError(f"{target}: {what} needs about {needed_bytes / 1e6:,.0f} MB, "
                              f"{free / 1e6:,.0f} MB are free on {existing}")
