"""The artifact directory an export produces, and reading it back.

    OUT_DIR/
      model.onnx | model.pt + model.ptl | ...   the exported file(s)
      config.json                               labels, sizes (pipelines need them)
      vocab.txt, tokenizer.json, ...             the checkpoint's tokenizer files
      manifest.json                             what is inside and how it was checked

The manifest records format, architecture, task, input/output names, shapes (dynamic dims
named), dtypes, sha256 of every model file, library versions, the validation figures and
the quantization recipe (None for plain exports).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pocketbert import __version__
from pocketbert.errors import PocketbertError
from pocketbert.paths import confined
from pocketbert.models.configs import CONFIG_NAME
from pocketbert.models.modeling import PreTrainedModel
from pocketbert.contracts.spec import ExportSpec
from pocketbert.models.tokenizer import (
    SPECIAL_TOKENS_MAP_NAME,
    TOKENIZER_CONFIG_NAME,
    TOKENIZER_NAME,
    VOCAB_NAME,
    vocabulary_text,
)
from pocketbert.models.weights import write_task_files

MANIFEST_NAME = "manifest.json"
TOKENIZER_FILES = (VOCAB_NAME, TOKENIZER_NAME, TOKENIZER_CONFIG_NAME, SPECIAL_TOKENS_MAP_NAME)
TRACKED_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxscript", "numpy", "tokenizers")


class ArtifactError(PocketbertError):
    """Not an artifact directory, or its files do not match its manifest."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    found = {"pocketbert": __version__, "python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def write_support_files(model: PreTrainedModel, directory: Path) -> list[str]:
    """config.json of the exported head, the checkpoint's tokenizer files (vocab.txt
    derived from tokenizer.json when the checkpoint has only that) and the files the
    task needs to mean the same thing (sentence-transformers' pooling)."""
    config = dataclasses.replace(model.config, architectures=[type(model).__name__])
    (directory / CONFIG_NAME).write_text(config.to_json_string(), encoding="utf-8")
    source = getattr(model, "checkpoint_dir", None)
    copied = []
    for name in TOKENIZER_FILES:
        if source is not None and (Path(source) / name).is_file():
            shutil.copyfile(Path(source) / name, directory / name)
            copied.append(name)
    if source is not None and VOCAB_NAME not in copied:
        vocab = vocabulary_text(source)
        if vocab is not None:
            (directory / VOCAB_NAME).write_text(vocab, encoding="utf-8")
            copied.insert(0, VOCAB_NAME)
    return copied + write_task_files(model, directory)


def _check_manifest(manifest: Any, path: Path) -> None:
    """The fields every reader relies on, of the types they expect; names of listed files
    confined to the artifact (a tampered manifest is refused here, not deep in a runner)."""
    def bad(why: str) -> ArtifactError:
        return ArtifactError(f"{path}: not a valid manifest ({why})")

    if not isinstance(manifest, dict):
        raise bad("not a JSON object")
    for key in ("format", "task", "model_class", "architecture"):
        if not isinstance(manifest.get(key), str):
            raise bad(f"no {key}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise bad("no files")
    for role, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not isinstance(entry.get("sha256"), str):
            raise bad(f"files.{role} needs a path and a sha256")
        confined(path.parent, entry["path"], f"{path} (files.{role})")
    for key in ("inputs", "outputs"):
        rows = manifest.get(key, [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in rows):
            raise bad(f"{key} must be a list of named tensors")
    extras = manifest.get("tokenizer_files", [])
    if not isinstance(extras, list):
        raise bad("tokenizer_files must be a list")
    for name in extras:
        confined(path.parent, name, f"{path} (tokenizer_files)")


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Written beside and renamed over: a manifest is never half written, also when an
    existing artifact's manifest is updated in place (``export --accelerator``)."""
    manifest = {**manifest, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    partial = directory / f".{MANIFEST_NAME}.{os.getpid()}"
    partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, directory / MANIFEST_NAME)


def is_artifact(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


@dataclasses.dataclass
class Artifact:
    directory: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> "Artifact":
        directory = Path(path)
        manifest_path = directory / MANIFEST_NAME
        if not manifest_path.is_file():
            raise ArtifactError(f"{directory}: no {MANIFEST_NAME} (not an export artifact)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{manifest_path}: not a valid manifest ({exc})") from None
        _check_manifest(manifest, manifest_path)
        return cls(directory, manifest)

    @property
    def task(self) -> str:
        return self.manifest["task"]

    def model_path(self, role: str = "model") -> Path:
        """A model file of the artifact, checked against the manifest's sha256."""
        files = self.manifest["files"]
        if role not in files:
            raise ArtifactError(f"{self.directory}: this {self.manifest['format']} artifact has no {role} file")
        entry = files[role]
        path = self.directory / entry["path"]  # confined to the directory by open()
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (listed in {MANIFEST_NAME})")
        if sha256(path) != entry["sha256"]:
            raise ArtifactError(f"{path}: sha256 differs from {MANIFEST_NAME} (truncated or modified file)")
        return path

    def role_of(self, path: str | Path) -> str:
        """The role ("model", "lite", "ort" ...) of a file of this artifact."""
        name = Path(path).name
        for role, entry in self.manifest["files"].items():
            if entry["path"] == name:
                return role
        raise ArtifactError(f"{path}: not a model file listed in {self.directory / MANIFEST_NAME}")

    def spec(self) -> ExportSpec:
        """What the exported graphs take and give, as the exporter had it in memory."""
        if "spec" not in self.manifest:
            raise ArtifactError(f"{self.directory / MANIFEST_NAME}: no spec (written by an older pocketbert: export again)")
        try:
            return ExportSpec.from_dict(self.manifest["spec"])
        except (TypeError, KeyError, AttributeError) as exc:
            raise ArtifactError(f"{self.directory / MANIFEST_NAME}: not a valid spec ({exc})") from None

    @property
    def fixed_sequence_length(self) -> int | None:
        spec = self.spec()
        return spec.sequence if spec.static and not spec.buckets else None
