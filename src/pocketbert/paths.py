"""Names read from files (manifests, shard indexes) stay inside their directory.

A manifest or an index is data, possibly an attacker's: a ``path`` of ``/etc/passwd``,
``../../secret`` or a symlink pointing out would make pocketbert read (and android-assets
ship) a file from anywhere, and the sha256 beside it proves nothing when the same file
supplies both. Every such name goes through ``confined``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pocketbert.errors import PocketbertError


def confined(directory: str | Path, name: object, what: str) -> Path:
    """``directory / name`` if ``name`` is a relative path that stays inside ``directory``
    (after resolving symlinks); else one line naming ``what`` listed it."""
    if not isinstance(name, str) or not name.strip() or "\x00" in name or "\\" in name:
        raise PocketbertError(f"{what}: {name!r} is not a relative file name")
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise PocketbertError(f"{what}: {name!r} points outside {directory}")
    base = Path(directory).resolve()
    path = Path(directory) / relative
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise PocketbertError(f"{what}: {name!r} leads outside {directory} (a symbolic link)")
    return path
