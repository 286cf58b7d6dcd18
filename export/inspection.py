"""``inspect``: every model file of an artifact (or one file, ours or not) through its
format plugin's accelerator checks."""

from __future__ import annotations

from pathlib import Path

from pocketbert.errors import PocketbertError
from pocketbert.contracts.accelerator import FileInspection


def inspect_path(path: str | Path) -> list[FileInspection]:
    """An artifact directory: each file its manifest lists (sha256-checked); a file inside an
    artifact: that one, with the manifest; any other model file: by its suffix alone."""
    from pocketbert.formats import format_for_file, get_format
    from pocketbert.contracts.artifact import Artifact, is_artifact

    path = Path(path)
    if path.is_dir():
        if not is_artifact(path):
            raise PocketbertError(f"{path}: neither a model file nor an export artifact (no manifest.json)")
        artifact = Artifact.open(path)
        fmt = get_format(artifact.manifest.format)
        return [_inspect_loadable(fmt, artifact.model_path(role), artifact.manifest) for role in artifact.manifest.files]
    if not path.is_file():
        raise PocketbertError(f"{path}: no such file or directory")
    fmt = format_for_file(path)
    manifest = Artifact.open(path.parent).manifest if is_artifact(path.parent) else None
    if manifest is not None:
        Artifact(path.parent, manifest).role_of(path)  # a file the manifest lists, or an error
    return [_inspect_loadable(fmt, path, manifest)]


def _inspect_loadable(fmt, path: Path, manifest) -> FileInspection:
    """The accelerator checks read a file's graph their own way (onnx's protobuf parser,
    onnxruntime's optimizer, LiteRT's analyzer) and each fails on a damaged file in its own
    words, some with exit 0 on an empty one. The file must first load where bench and parity
    load it (the format's CPU runner): then a truncated, renamed or empty file is one line,
    the same line those commands give."""
    from pocketbert.formats import runner_for_file

    if path.stat().st_size == 0:
        raise PocketbertError(f"{path}: the file is empty")
    runner_for_file(path, manifest, threads=1)  # RunnerError naming the file and the runtime's reason
    return fmt.inspect(path, manifest)


ACCELERATOR_WORDS = {"gpu": " GPU", "npu": " NPU"}  # the checks of each export --accelerator, by name


def verify_accelerator(directory: str | Path, accelerator: str) -> dict:
    """Prove an export made for ``accelerator`` is what it takes: its checks must
    say "fully taken" where any of them could run, and an NPU file must be integer end to
    end at its outputs (integer logits; float tables may remain for the input lookups,
    which run before the first QUANTIZE). Returns the manifest's ``accelerator_check``
    section; raises when a check that ran says no. When no check of the accelerator can run here, the section
    says so and names why (the export is then not verified, not refused)."""
    reports = inspect_path(directory)
    main = reports[0]
    checks = [c for c in main.checks if ACCELERATOR_WORDS[accelerator] in c.accelerator]
    ran = [c for c in checks if c.how != "unavailable"]
    problems = []
    if not main.static:
        problems.append("the graph has dynamic shapes")
    floats = {d: n for d, n in main.tensor_dtypes.items() if d.startswith("float")}
    if accelerator == "npu" and any(row["dtype"].startswith("float") for row in main.outputs):
        problems.append(f"float outputs ({', '.join(row['dtype'] for row in main.outputs)}): an NPU wants integer I/O")
    if ran and not any(c.fully_taken for c in ran):
        problems.extend(f"{c.accelerator}: {c.verdict}" for c in ran)
    if problems:
        raise PocketbertError(f"{main.path} is not ready for the {accelerator.upper()}: " + "; ".join(problems))
    return {
        "accelerator": accelerator,
        "verified": bool(ran),
        "fully_taken_by": [c.accelerator for c in ran if c.fully_taken],
        "not_checked": {c.accelerator: c.reasons[0] if c.reasons else "" for c in checks if c.how == "unavailable"},
        "measured": {c.accelerator: c.measured for c in ran if c.measured},
        "float_constants": sum(floats.values()),
    }
