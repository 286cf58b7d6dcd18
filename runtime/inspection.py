"""``inspect``: every model file of an artifact (or one file, ours or not) through its
format plugin's accelerator checks."""

from __future__ import annotations

from pathlib import Path

from pocketbert.errors import PocketbertError
from pocketbert.runtime.accelerator import FileInspection


def inspect_path(path: str | Path) -> list[FileInspection]:
    """An artifact directory: each file its manifest lists (sha256-checked); a file inside an
    artifact: that one, with the manifest; any other model file: by its suffix alone."""
    from pocketbert.formats import format_for_file, get_format
    from pocketbert.runtime.artifact import Artifact, is_artifact

    path = Path(path)
    if path.is_dir():
        if not is_artifact(path):
            raise PocketbertError(f"{path}: neither a model file nor an export artifact (no manifest.json)")
        artifact = Artifact.open(path)
        fmt = get_format(artifact.manifest["format"])
        return [fmt.inspect(artifact.model_path(role), artifact.manifest) for role in artifact.manifest["files"]]
    if not path.is_file():
        raise PocketbertError(f"{path}: no such file or directory")
    fmt = format_for_file(path)
    manifest = Artifact.open(path.parent).manifest if is_artifact(path.parent) else None
    if manifest is not None:
        Artifact(path.parent, manifest).role_of(path)  # a file the manifest lists, or an error
    return [fmt.inspect(path, manifest)]
