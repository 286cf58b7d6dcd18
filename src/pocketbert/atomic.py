"""Write files and directories so that a failure never leaves a half-written result.

Everything is built under a hidden temporary name beside the target and renamed into
place at the end (a rename within one filesystem is atomic).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pocketbert.errors import PocketbertError


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _chmod_like_new(path: Path, mode: int) -> None:
    """mkdtemp/mkstemp create private (0700/0600) entries; give the result normal modes."""
    os.chmod(path, mode & ~_umask())


def refuse_existing(target: str | Path, force: bool) -> None:
    """The check atomic_directory makes, for callers that want it before slow work."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise PocketbertError(f"{target}: exists and is not a directory")
    if _is_nonempty_dir(target) and not force:
        raise PocketbertError(f"{target}: already exists and is not empty (use --force to replace it)")


@contextlib.contextmanager
def atomic_directory(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``target`` if the block succeeds.

    An existing non-empty ``target`` is refused unless ``force``; with ``force`` it is
    replaced only after the new one is complete.
    """
    target = Path(target)
    refuse_existing(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
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
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _chmod_like_new(tmp, 0o666)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
