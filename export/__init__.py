"""PyTorch -> ONNX / TorchScript / TFLite / ExecuTorch, validated, in an artifact directory.

``export_model(checkpoint, task, format, out_dir)`` loads the checkpoint, writes the model
file(s) into a temporary directory, validates every file against the PyTorch model on
fresh inputs, adds config, tokenizer and manifest, and only then renames the directory
into place: a failed export leaves nothing behind.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from pocketbert.atomic import atomic_directory
from pocketbert.errors import PocketbertError
from pocketbert.export.artifact import sha256, versions, write_manifest, write_support_files
from pocketbert.export.spec import ExportSpec
from pocketbert.export.validate import DEFAULT_ATOL, validate
from pocketbert.models.modeling import PreTrainedModel


@dataclass(frozen=True)
class ExportOptions:
    seq_len: int = 128
    batch: int = 1
    static: bool = False
    dynamic: bool = False  # formats that are static by default (executorch): dynamic batch and sequence
    opset: int = 18
    atol: float = DEFAULT_ATOL
    ort: bool = False  # onnx: also write .ort for ONNX Runtime Mobile
    optimize: bool = False  # onnx: also write onnxruntime's transformer-optimized graph


def _export_onnx(model: PreTrainedModel, spec: ExportSpec, directory: Path, options: ExportOptions):
    from pocketbert.export import onnx_export

    details = onnx_export.export_onnx(model, spec, directory, options.opset)
    files = {"model": onnx_export.MODEL_FILE}
    if options.optimize:
        details["optimizer"] = onnx_export.optimize(model, directory)
        files["optimized"] = onnx_export.OPTIMIZED_FILE
    if options.ort:
        files["ort"] = onnx_export.convert_to_ort(directory).name
    return files, details


def _export_torchscript(model: PreTrainedModel, spec: ExportSpec, directory: Path, options: ExportOptions):
    from pocketbert.export import torchscript_export

    if options.ort or options.optimize:
        raise PocketbertError("--ort and --optimize apply to --format onnx only")
    details = torchscript_export.export_torchscript(model, spec, directory)
    return {"model": torchscript_export.MODEL_FILE, "lite": torchscript_export.LITE_FILE}, details


def _export_tflite(model: PreTrainedModel, spec: ExportSpec, directory: Path, options: ExportOptions):
    from pocketbert.export import tflite_export

    if options.ort or options.optimize:
        raise PocketbertError("--ort and --optimize apply to --format onnx only")
    return {"model": tflite_export.MODEL_FILE}, tflite_export.export_tflite(model, spec, directory)


def _export_executorch(model: PreTrainedModel, spec: ExportSpec, directory: Path, options: ExportOptions):
    from pocketbert.export import executorch_export

    if options.ort or options.optimize:
        raise PocketbertError("--ort and --optimize apply to --format onnx only")
    return {"model": executorch_export.MODEL_FILE}, executorch_export.export_executorch(model, spec, directory)


@dataclass(frozen=True)
class Format:
    """An exporter (writes files into a directory, returns them by role and the manifest
    details) and what its graphs take."""

    export: Callable
    static_only: bool = False
    static_by_default: bool = False  # static unless options.dynamic
    input_dtype: str = "int64"


FORMATS: dict[str, Format] = {
    "onnx": Format(_export_onnx),
    "torchscript": Format(_export_torchscript),
    # delegates want static shapes; LiteRT converts ids to int32
    "tflite": Format(_export_tflite, static_only=True, input_dtype="int32"),
    # XNNPACK takes no symbolic reshapes and memory is planned for the largest input
    "executorch": Format(_export_executorch, static_by_default=True),
}


def export_model(
    model_ref: str | Path,
    task: str | None,
    fmt: str,
    out_dir: str | Path,
    options: ExportOptions = ExportOptions(),
    force: bool = False,
) -> dict:
    from pocketbert.benchmarks.runners import TorchRunner, runner_for_file
    from pocketbert.models import load_model

    if fmt not in FORMATS:
        raise PocketbertError(f"unsupported format {fmt!r} (supported: {', '.join(FORMATS)})")
    form = FORMATS[fmt]
    if options.dynamic and (options.static or form.static_only):
        raise PocketbertError(f"--dynamic: {fmt} exports are always static" if form.static_only
                              else "--static and --dynamic exclude each other")
    model = load_model(model_ref, task=task)
    static = options.static or form.static_only or (form.static_by_default and not options.dynamic)
    spec = ExportSpec.for_model(model, batch=options.batch, sequence=options.seq_len, static=static)
    io = {"inputs": spec.manifest_inputs(form.input_dtype), "outputs": spec.manifest_outputs()}
    with atomic_directory(out_dir, force=force) as tmp:
        start = time.perf_counter()
        files, details = form.export(model, spec, tmp, options)
        export_seconds = time.perf_counter() - start
        reference = TorchRunner(model)
        entries = {}
        for role, name in files.items():
            runner = runner_for_file(tmp / name, io)
            figures = validate(reference, runner, spec, model.config.vocab_size, options.atol, label=name)
            entries[role] = {"path": name, "sha256": sha256(tmp / name), "bytes": (tmp / name).stat().st_size,
                             "validation": figures}
        manifest = {
            "format": fmt,
            "architecture": model.config.model_type,
            "model_class": type(model).__name__,
            "task": model.task,
            "source": str(model_ref),
            **io,
            "static": spec.static,
            "files": entries,
            "tokenizer_files": write_support_files(model, tmp),
            "details": details,
            "export_seconds": round(export_seconds, 2),
            "options": asdict(options),
            "quantization": None,
            "versions": versions(),
        }
        write_manifest(tmp, manifest)
    return manifest
