"""The artifact directory an export produces, and reading it back.

    OUT_DIR/
      model.onnx | model.pt + model.ptl | ...   the exported file(s)
      config.json                               labels, sizes (pipelines need them)
      vocab.txt, tokenizer.json, ...             the checkpoint's tokenizer files
      manifest.json                             what is inside and how it was checked

The manifest records format, architecture, task, input/output names, shapes (dynamic dims
named), dtypes, sha256 of every model file, library versions, the validation figures and
the quantization recipe (None for plain exports). ``Manifest`` is that record: read
(and checked) by ``Manifest.from_dict`` only, written by ``write_manifest`` only.
"""

from __future__ import annotations

import copy
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
from pocketbert.textfile import parse_json
from pocketbert.models.configs import CONFIG_NAME
from pocketbert.models.modeling import PreTrainedModel
from pocketbert.contracts.spec import ExportSpec
from pocketbert.models.tokenizer import (
    SPECIAL_TOKENS_MAP_NAME,
    TOKENIZER_CONFIG_NAME,
    TOKENIZER_NAME,
    VOCAB_NAME,
    load_tokenizer,
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
    if copied:  # what the app will load: refused here, naming the checkpoint's file, not on the phone
        load_tokenizer(source)
    return copied + write_task_files(model, directory)


def _extra(data: dict, record) -> dict:
    """Keys a record does not know (an older or newer writer's): kept, and written back."""
    known = {f.name for f in dataclasses.fields(record)}
    return {k: v for k, v in data.items() if k not in known}


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """An input or output of the model files: dims are sizes (fixed) or axis names."""

    name: str
    shape: list = dataclasses.field(default_factory=list)
    dtype: str = ""
    extra: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, row: dict) -> "TensorEntry":
        return cls(row["name"], list(row.get("shape") or []), row.get("dtype", ""), _extra(row, cls))

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, **self.extra}


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One model file of an artifact. A float export's file carries ``validation`` (its
    check against PyTorch); a quantized one ``float_bytes``, ``agreement_with_float``
    (random ids) and ``quality`` (real text; None without a tokenizer) instead."""

    path: str  # relative to the artifact, confined to it by Manifest.from_dict
    sha256: str
    bytes: int | None = None
    validation: dict | None = None
    float_bytes: int | None = None
    agreement_with_float: dict | None = None
    quality: dict | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        return self.agreement_with_float is not None

    @classmethod
    def from_dict(cls, data: dict) -> "FileEntry":
        known = {f.name: data.get(f.name) for f in dataclasses.fields(cls) if f.name != "extra"}
        return cls(**known, extra=_extra(data, cls))

    def to_dict(self) -> dict:
        out = {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}
        if self.validation is not None:
            out["validation"] = self.validation
        if self.quantized:
            out.update(float_bytes=self.float_bytes, agreement_with_float=self.agreement_with_float,
                       quality=self.quality)
        return {**out, **self.extra}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Manifest:
    """manifest.json as a record: what an artifact holds and how it was checked. Only
    ``Manifest.from_dict`` reads one (checking it), only ``write_manifest`` writes one.

    Fields are in the order the JSON lists them. ``spec``, ``details``, ``options``,
    ``quantization``, ``versions`` and ``accelerator_check`` stay JSON objects: they are
    owned by ``ExportSpec``, the format plugin, ``ExportOptions``, the recipe and the
    accelerator checks. Keys this version does not know (an older or newer pocketbert's)
    are kept in ``extra`` and written back: updating a manifest in place loses nothing."""

    format: str
    architecture: str
    model_class: str
    task: str
    source: str = ""
    inputs: list[TensorEntry] = dataclasses.field(default_factory=list)
    outputs: list[TensorEntry] = dataclasses.field(default_factory=list)
    static: bool = False
    spec: dict | None = None  # ExportSpec.to_dict(); None in manifests older than the spec
    files: dict[str, FileEntry] = dataclasses.field(default_factory=dict)  # role -> file
    untrained_weights: list[str] = dataclasses.field(default_factory=list)
    deprecated: str | None = None
    tokenizer_files: list[str] = dataclasses.field(default_factory=list)
    details: dict = dataclasses.field(default_factory=dict)
    export_seconds: float | None = None
    options: dict = dataclasses.field(default_factory=dict)
    quantization: dict | None = None  # Recipe.to_dict() and how it was applied; None for float exports
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    accelerator_check: dict | None = None  # export --accelerator's verdict; not written when None
    created: str = ""  # set by write_manifest
    extra: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> "Manifest":
        """The manifest at ``path`` (its JSON already parsed), checked: the fields every reader
        relies on, of the types they expect; names of listed files confined to the artifact
        (a tampered manifest is refused here, in one line, not deep in a runner)."""
        def bad(why: str) -> ArtifactError:
            return ArtifactError(f"{path}: not a valid manifest ({why})")

        if not isinstance(data, dict):
            raise bad("not a JSON object")
        for key in ("format", "task", "model_class", "architecture"):
            if not isinstance(data.get(key), str):
                raise bad(f"no {key}")
        files = data.get("files")
        if not isinstance(files, dict) or not files:
            raise bad("no files")
        for role, entry in files.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not isinstance(entry.get("sha256"), str):
                raise bad(f"files.{role} needs a path and a sha256")
            confined(path.parent, entry["path"], f"{path} (files.{role})")
        for key in ("inputs", "outputs"):
            rows = data.get(key, [])
            if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in rows):
                raise bad(f"{key} must be a list of named tensors")
        extras = data.get("tokenizer_files", [])
        if not isinstance(extras, list):
            raise bad("tokenizer_files must be a list")
        for name in extras:
            confined(path.parent, name, f"{path} (tokenizer_files)")
        for key in ("spec", "quantization", "accelerator_check", "details", "options", "versions"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise bad(f"{key} must be an object")
        if data.get("untrained_weights") is not None and not isinstance(data["untrained_weights"], list):
            raise bad("untrained_weights must be a list")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        values.update(
            inputs=[TensorEntry.from_dict(r) for r in data.get("inputs", [])],
            outputs=[TensorEntry.from_dict(r) for r in data.get("outputs", [])],
            files={role: FileEntry.from_dict(entry) for role, entry in files.items()},
            tokenizer_files=list(extras),
        )
        return cls(**values, extra=_extra(data, cls))

    def to_dict(self) -> dict:
        """The JSON written (``write_manifest``): the layout manifests have always had."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name == "accelerator_check" and value is None):
                continue
            if f.name in ("inputs", "outputs"):
                value = [row.to_dict() for row in value]
            elif f.name == "files":
                value = {role: entry.to_dict() for role, entry in value.items()}
            elif isinstance(value, (list, dict)):
                value = copy.deepcopy(value)
            out[f.name] = value
        return {**out, **copy.deepcopy(self.extra)}


def write_manifest(directory: Path, manifest: Manifest) -> Manifest:
    """The one writer of manifest.json, stamping ``created``. The JSON is read back through
    ``Manifest.from_dict`` before it lands (nothing unreadable is written), then written
    beside and renamed over: a manifest is never half written, also when an existing
    artifact's manifest is updated in place (``export --accelerator``). Returns the
    manifest as written (values JSON has no type for, such as paths, as strings)."""
    stamped = dataclasses.replace(manifest, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    text = json.dumps(stamped.to_dict(), indent=2, default=str) + "\n"
    written = Manifest.from_dict(json.loads(text), directory / MANIFEST_NAME)
    partial = directory / f".{MANIFEST_NAME}.{os.getpid()}"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, directory / MANIFEST_NAME)
    return written


def is_artifact(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


@dataclasses.dataclass
class Artifact:
    directory: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: str | Path) -> "Artifact":
        directory = Path(path)
        manifest_path = directory / MANIFEST_NAME
        if not manifest_path.is_file():
            raise ArtifactError(f"{directory}: no {MANIFEST_NAME} (not an export artifact)")
        try:
            text = manifest_path.read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{manifest_path}: not a valid manifest ({exc})") from None
        manifest = parse_json(text, str(manifest_path), ArtifactError)
        return cls(directory, Manifest.from_dict(manifest, manifest_path))

    @property
    def task(self) -> str:
        return self.manifest.task

    def model_path(self, role: str = "model") -> Path:
        """A model file of the artifact, checked against the manifest's sha256."""
        entry = self.manifest.files.get(role)
        if entry is None:
            raise ArtifactError(f"{self.directory}: this {self.manifest.format} artifact has no {role} file")
        path = self.directory / entry.path  # confined to the directory by Manifest.from_dict
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (listed in {MANIFEST_NAME})")
        if sha256(path) != entry.sha256:
            raise ArtifactError(f"{path}: sha256 differs from {MANIFEST_NAME} (truncated or modified file)")
        return path

    def role_of(self, path: str | Path) -> str:
        """The role ("model", "lite", "ort" ...) of a file of this artifact."""
        name = Path(path).name
        for role, entry in self.manifest.files.items():
            if entry.path == name:
                return role
        raise ArtifactError(f"{path}: not a model file listed in {self.directory / MANIFEST_NAME}")

    def spec(self) -> ExportSpec:
        """What the exported graphs take and give, as the exporter had it in memory."""
        if self.manifest.spec is None:
            raise ArtifactError(f"{self.directory / MANIFEST_NAME}: no spec (written by an older pocketbert: export again)")
        try:
            return ExportSpec.from_dict(self.manifest.spec)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ArtifactError(f"{self.directory / MANIFEST_NAME}: not a valid spec ({exc})") from None

    @property
    def fixed_sequence_length(self) -> int | None:
        spec = self.spec()
        return spec.sequence if spec.static and not spec.buckets else None
