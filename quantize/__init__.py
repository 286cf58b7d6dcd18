"""int8 (and float16) recipes per format, calibration data, and applying them.

``quantize_model(source, recipe, out_dir)`` takes a checkpoint (exported to the recipe's
format first) or a float artifact of that format, applies the recipe, and writes a new
artifact whose manifest carries the recipe, the calibration, the excluded layers and how
close the result stays to the float model (max/mean abs diff, cosine, top-1 agreement).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from pocketbert.atomic import atomic_directory, refuse_existing
from pocketbert.errors import PocketbertError
from pocketbert.quantize.recipes import RECIPES, Recipe, get_recipe

__all__ = ["RECIPES", "Recipe", "get_recipe", "quantize_model"]


def _float_artifact(source, recipe: Recipe, task, seq_len, workdir: Path):
    """The float artifact to quantize: the one given, or one exported from a checkpoint."""
    from pocketbert.export import ExportOptions, export_model
    from pocketbert.export.artifact import Artifact, is_artifact

    if is_artifact(source):
        artifact = Artifact.open(source)
        if artifact.manifest["format"] != recipe.format:
            raise PocketbertError(f"recipe {recipe.name} is for {recipe.format}; {source} is a {artifact.manifest['format']} export")
        if artifact.manifest.get("quantization"):
            raise PocketbertError(f"{source} is already quantized ({artifact.manifest['quantization']['name']})")
        if recipe.format == "torchscript":
            raise PocketbertError("torchscript recipes quantize the PyTorch model: pass the checkpoint, not an export")
        return artifact
    export_model(source, task, recipe.format, workdir / "float", ExportOptions(seq_len=seq_len))
    return Artifact.open(workdir / "float")


def quantize_model(
    source: str | Path,
    recipe_name: str,
    out_dir: str | Path,
    task: str | None = None,
    calibration_file: str | Path | None = None,
    exclude: tuple[str, ...] = (),
    seq_len: int = 128,
    force: bool = False,
) -> dict:
    from pocketbert.benchmarks.runners import runner_for_file
    from pocketbert.export.artifact import sha256, versions, write_manifest
    from pocketbert.export.spec import ExportSpec
    from pocketbert.export.validate import agreement
    from pocketbert.models import load_model
    from pocketbert.models.configs import load_config
    from pocketbert.models.tokenizer import load_tokenizer
    from pocketbert.quantize.calibration import calibration_inputs, read_texts

    recipe = get_recipe(recipe_name)
    if recipe.format == "executorch":
        from pocketbert.export.executorch_export import require

        require()  # the install hint before any work
    refuse_existing(out_dir, force)  # before exporting the float model, not after
    examples = read_texts(calibration_file) if recipe.needs_calibration else None
    with tempfile.TemporaryDirectory(prefix="pocketbert-quantize-") as work:
        artifact = _float_artifact(source, recipe, task, seq_len, Path(work))
        manifest = artifact.manifest
        float_file = artifact.model_path()
        config = load_config(artifact.directory)
        shape = manifest["inputs"][0]["shape"]
        spec = ExportSpec.for_model(
            load_model_stub(config, manifest), batch=shape[0] if isinstance(shape[0], int) else 1,
            sequence=shape[-1] if isinstance(shape[-1], int) else seq_len, static=isinstance(shape[-1], int),
        )
        with atomic_directory(out_dir, force=force) as tmp:
            start = time.perf_counter()
            target = tmp / float_file.name
            excluded = _resolve_exclusions(recipe, float_file, exclude)
            calibration = None
            if recipe.needs_calibration:
                tokenizer = load_tokenizer(artifact.directory)
                dtype = "int32" if recipe.format == "tflite" else "int64"
                # padded to one length: onnxruntime's percentile/entropy calibrators
                # stack activations across examples
                calibration = calibration_inputs(
                    tokenizer, spec.input_names, examples, spec.sequence, True, dtype=dtype, input_shape=shape,
                    limit=calibration_limit(recipe),
                )
            if recipe.format == "torchscript":
                from pocketbert.export.torchscript_export import export_torchscript
                from pocketbert.quantize.torchscript_quant import quantize_linears

                float_model = load_model(source, task=manifest["task"])
                details = export_torchscript(quantize_linears(recipe, float_model, list(exclude)), spec, tmp)
                files = {"model": "model.pt", "lite": "model.ptl"}
            elif recipe.format == "executorch":
                from pocketbert.quantize.executorch_quant import quantize_executorch

                float_model = _pytorch_model(source, manifest)
                details = quantize_executorch(recipe, float_model, spec, tmp, calibration, list(exclude))
                files = {"model": float_file.name}
            elif recipe.format == "onnx":
                from pocketbert.quantize.onnx_quant import quantize_onnx

                details = quantize_onnx(recipe, float_file, target, calibration, excluded)
                files = {"model": float_file.name}
            else:
                from pocketbert.quantize.tflite_quant import quantize_tflite

                details = quantize_tflite(recipe, float_file, target, calibration, list(exclude))
                files = {"model": float_file.name}
            seconds = time.perf_counter() - start
            reference = runner_for_file(float_file, manifest)
            entries = {}
            for role, name in files.items():
                candidate = runner_for_file(tmp / name, manifest)
                entries[role] = {
                    "path": name, "sha256": sha256(tmp / name), "bytes": (tmp / name).stat().st_size,
                    "float_bytes": artifact.manifest["files"]["model"]["bytes"],
                    "agreement_with_float": agreement(reference, candidate, spec, config.vocab_size, label=name),
                }
            for extra in ["config.json", *manifest.get("tokenizer_files", [])]:
                shutil.copyfile(artifact.directory / extra, tmp / extra)
            quantized = {
                **{k: v for k, v in manifest.items() if k not in ("files", "created")},
                "files": entries,
                "quantization": {
                    **recipe.to_dict(),
                    "calibration": None if examples is None else {
                        "source": str(calibration_file) if calibration_file else "project corpus (models/data/corpus_en.txt)",
                        "examples": min(len(examples), calibration_limit(recipe)),
                    },
                    "exclude": list(exclude),
                    "excluded_nodes": excluded,
                    "seconds": round(seconds, 2),
                    "details": details,
                },
                "versions": versions(),
            }
            write_manifest(tmp, json.loads(json.dumps(quantized, default=str)))
    return quantized


def _pytorch_model(source, manifest):
    """The model an executorch recipe quantizes: the checkpoint given, or the one the float
    artifact was exported from (its manifest's ``source``)."""
    from pocketbert.export.artifact import is_artifact
    from pocketbert.models import load_model

    if not is_artifact(source):
        return load_model(source, task=manifest["task"])
    origin = manifest.get("source")
    try:
        return load_model(origin, task=manifest["task"])
    except (PocketbertError, OSError, TypeError) as exc:
        raise PocketbertError(
            f"executorch recipes quantize the PyTorch model: {source} was exported from {origin}, "
            f"which cannot be loaded ({exc}); pass the checkpoint instead"
        ) from None


def calibration_limit(recipe: Recipe) -> int:
    """How many calibration examples to run. 100, as the MobileBERT paper calibrated, except
    for onnxruntime's entropy and percentile calibrators, which keep every activation of
    every example in memory (the 30522-wide MLM logits alone: 15 MB per example at seq 128)."""
    return 16 if recipe.format == "onnx" and recipe.calibration in ("entropy", "percentile") else 100


def load_model_stub(config, manifest):
    """A meta-device model of the manifest's class: ExportSpec needs its names and task,
    not its weights."""
    import torch

    from pocketbert.models.registry import CLASSES_BY_NAME

    with torch.device("meta"):
        return CLASSES_BY_NAME[manifest["model_class"]](config)


def _resolve_exclusions(recipe: Recipe, float_file: Path, exclude: tuple[str, ...]) -> list[str]:
    """Graph nodes (ONNX) or tensors (TFLite) each pattern matches; a pattern matching
    nothing is a warning (the recipe then quantizes everything it would have)."""
    if not exclude:
        return []
    if recipe.format == "onnx":
        from pocketbert.quantize.onnx_quant import matching_nodes as match
    elif recipe.format == "tflite":
        from pocketbert.quantize.tflite_quant import matching_tensors as match
    else:
        return list(exclude)  # module-name patterns, matched in torchscript_quant
    matched = match(float_file, list(exclude))
    for pattern, names in matched.items():
        if not names:
            warnings.warn(f"--exclude {pattern!r} matches nothing in {float_file.name}", stacklevel=3)
    return sorted({n for names in matched.values() for n in names})
