"""int8 (and float16) recipes per format, calibration data, and applying them.

``quantize_model(source, recipe, out_dir)`` takes a checkpoint (exported to the recipe's
format first, with every export option given) or a float artifact of that format, hands
the format's quantizer one ``QuantizeJob`` (the float model and spec in memory, the float
file, calibration, exclusions), and writes a new artifact whose manifest carries the
recipe, the calibration, the excluded layers and how close the result stays to the float
model.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import warnings
from pathlib import Path

from pocketbert.atomic import atomic_directory, refuse_existing, work_directory
from pocketbert.quality import metrics as quality
from pocketbert.errors import PocketbertError
from pocketbert.formats import get_format, runner_for_file
from pocketbert.quantize.finetune import FinetuneOptions, integer_scheme
from pocketbert.quantize.recipes import RECIPES, Recipe, get_recipe
from pocketbert.contracts.artifact import Artifact, FileEntry, Manifest, is_artifact, sha256, versions, write_manifest
from pocketbert.contracts.format import ExportOptions, Format, QuantizeJob

__all__ = ["RECIPES", "FinetuneOptions", "Recipe", "get_recipe", "quantize_model"]

CORPUS_SOURCE = "project corpus (models/data/corpus_en.txt)"


def _float_start(source, recipe: Recipe, fmt: Format, task, options: ExportOptions, workdir: Path):
    """(float artifact, float PyTorch model or None): the artifact given, or one exported
    from the checkpoint with ``options`` (the model then stays in memory)."""
    from pocketbert.export import check_trained, export_loaded
    from pocketbert.models import load_model

    if is_artifact(source):
        artifact = Artifact.open(source)
        if artifact.manifest.format != recipe.format:
            raise PocketbertError(f"recipe {recipe.name} is for {recipe.format}; {source} is a {artifact.manifest.format} export")
        if artifact.manifest.quantization:
            raise PocketbertError(f"{source} is already quantized ({artifact.manifest.quantization.get('name')})")
        check_trained(source, artifact.task, artifact.manifest.untrained_weights, options.require_trained_head)
        return artifact, None
    model = load_model(source, task=task)
    export_loaded(model, recipe.format, workdir / "float", options, source=str(source))
    return Artifact.open(workdir / "float"), model


def quantize_model(
    source: str | Path,
    recipe_name: str,
    out_dir: str | Path,
    task: str | None = None,
    calibration_file: str | Path | None = None,
    exclude: tuple[str, ...] = (),
    seq_len: int | None = None,
    force: bool = False,
    options: ExportOptions | None = None,
    eval_texts: list[str] | None = None,
    keep_below_floor: bool = False,
    reference_outputs: dict | None = None,
    finetune: "FinetuneOptions | None" = None,
    progress: bool = False,
) -> Manifest:
    """``options`` are the export options of the float model (``seq_len`` alone is a
    shorthand for ``ExportOptions(seq_len=...)``). Quality against the float file is
    measured on ``eval_texts`` (default: the held-out sentences) with the task's metric;
    a file under the floors (``quality/gate.py``) raises BelowFloorError and leaves nothing
    behind, unless ``keep_below_floor`` (the sweep, the scan and the target search measure
    every candidate; the manifest then lists what failed). ``reference_outputs`` is a dict
    that keeps the float file's outputs on ``eval_texts`` between calls that start from the
    same float model (the scan quantizes it once per block; its reference runs once). Returns
    the new artifact's manifest: the float one's, with the quantized files and the recipe.
    ``finetune`` first fine-tunes the float weights with the recipe's rounding emulated
    (``quantize/finetune.py``) on the calibration text, then quantizes those; quality is
    still measured against the untouched float model, beside the file post-training
    quantization alone makes (``finetune.before``) and the tuned float model's own drift."""
    from pocketbert.quality import gate
    from pocketbert.quality.agreement import agreement
    from pocketbert.quality.validate import random_batches
    from pocketbert.models.configs import load_config
    from pocketbert.models.tokenizer import load_tokenizer
    from pocketbert.quantize.calibration import calibration_inputs, read_texts

    recipe = get_recipe(recipe_name)
    fmt = get_format(recipe.format)
    fmt.require()  # the install hint before any work
    options = options or ExportOptions()
    if seq_len is not None:
        options = dataclasses.replace(options, seq_len=seq_len)
    refuse_existing(out_dir, force, protect=[source])  # before exporting the float model, not after
    examples = read_texts(calibration_file, mixed_lengths=recipe.length_mixed_calibration) if recipe.needs_calibration else None
    scheme = None if finetune is None else integer_scheme(recipe)  # before any work: a recipe it cannot emulate
    limit = fmt.calibration_limit(recipe)
    with work_directory("quantize") as work:
        artifact, model = _float_start(source, recipe, fmt, task, options, Path(work))
        manifest = artifact.manifest
        float_file = artifact.model_path()
        config = load_config(artifact.directory)
        spec = artifact.spec()
        if model is None and (fmt.quantizes == "model" or finetune is not None):
            model = _pytorch_model(source, manifest)
        if reference_outputs is None:  # the float file runs once for every quantized file
            reference_outputs = {}
        tuning = None
        if finetune is not None:
            tuning = _finetuned(source, artifact, model, recipe_name, scheme, finetune, calibration_file, options,
                                eval_texts, reference_outputs, Path(work), progress)
            model, quantized_from = tuning.pop("model"), tuning.pop("float_file")
        else:
            quantized_from = float_file
        with atomic_directory(out_dir, force=force, protect=[source]) as tmp:
            start = time.perf_counter()
            calibration = None
            if recipe.needs_calibration:
                # padded to one length: onnxruntime's percentile/entropy calibrators
                # stack activations across examples
                calibration = calibration_inputs(
                    load_tokenizer(artifact.directory), spec.input_names, examples, spec.sequence, True,
                    dtype=fmt.input_dtype, input_shape=manifest.inputs[0].shape, limit=limit,
                )
            job = QuantizeJob(recipe, model, spec, tmp, quantized_from, calibration, tuple(exclude),
                              _resolve_exclusions(fmt, quantized_from, exclude), options)
            files, details = fmt.quantize(job)
            seconds = time.perf_counter() - start
            reference = runner_for_file(float_file, manifest)
            tokenizer = _tokenizer_or_none(artifact.directory)
            batches = random_batches(spec, config.vocab_size)
            entries = {}
            for role, name in files.items():
                candidate = runner_for_file(tmp / name, manifest)
                entries[role] = FileEntry(
                    name, sha256(tmp / name), (tmp / name).stat().st_size,
                    float_bytes=manifest.files["model"].bytes,
                    # random ids: the numerical check; quality: real text, the task's metric
                    agreement_with_float=agreement(reference, candidate, batches, spec.output_names, label=name),
                    quality=None if tokenizer is None else quality.measure(
                        manifest.task, reference, candidate, tokenizer, spec, eval_texts, reference_outputs),
                )
            if tuning is not None and not keep_below_floor:
                _refuse_a_worse_tuning(tuning["before"], entries["model"])
            below_floor = gate.below_floor({e.path: e.quality for e in entries.values()}, config.random_weights)
            if below_floor and not keep_below_floor:
                raise gate.refusal(below_floor)
            for entry in entries.values():  # short and long texts: said beside the gate, not refused yet
                for line in gate.regime_shortfalls(entry.quality, config.random_weights):
                    warnings.warn(f"{entry.path}: {line}", stacklevel=2)
            for extra in ["config.json", *manifest.tokenizer_files]:  # names confined by Manifest.from_dict
                (tmp / extra).parent.mkdir(parents=True, exist_ok=True)  # 1_Pooling/config.json
                shutil.copyfile(artifact.directory / extra, tmp / extra)
            quantized = dataclasses.replace(
                manifest,
                files=entries,
                quantization={
                    **recipe.to_dict(),
                    "calibration": None if examples is None else {
                        "source": str(calibration_file) if calibration_file else CORPUS_SOURCE,
                        "examples": min(len(examples), limit),
                    },
                    "exclude": list(exclude),
                    "below_floor": below_floor,  # file -> figures under the floors (kept on request)
                    "excluded_nodes": job.excluded_nodes,
                    "seconds": round(seconds, 2),
                    "details": details,
                    **({} if tuning is None else {"finetune": tuning}),
                },
                versions=versions(),
            )
            written = write_manifest(tmp, quantized)
    return written


def _finetuned(source, artifact: Artifact, model, recipe_name: str, scheme, finetune, calibration_file, options,
               eval_texts, reference_outputs: dict, work: Path, progress: bool) -> dict:
    """The fine-tuned float model and file, with what the manifest says of them: the run,
    the post-training file's quality (``before``) and the tuned float model's against the
    original (``float_drift``: the task itself must not move)."""
    from pocketbert.export import export_loaded
    from pocketbert.quantize.calibration import read_texts
    from pocketbert.quantize.finetune import finetune as run_finetune
    from pocketbert.models.tokenizer import load_tokenizer

    before = quantize_model(artifact.directory, recipe_name, work / "before", calibration_file=calibration_file,
                            eval_texts=eval_texts, keep_below_floor=True, reference_outputs=reference_outputs)
    texts = [text for text, _ in read_texts(calibration_file, mixed_lengths=True)]
    spec, tokenizer = artifact.spec(), load_tokenizer(artifact.directory)
    tuned, report = run_finetune(model, scheme, tokenizer, texts, spec.sequence, finetune, progress=progress)
    export_loaded(tuned, artifact.manifest.format, work / "tuned", options, source=str(source))
    tuned_file = Artifact.open(work / "tuned").model_path()
    manifest = artifact.manifest
    drift = quality.measure(manifest.task, runner_for_file(artifact.model_path(), manifest),
                            runner_for_file(tuned_file, manifest), tokenizer, spec,
                            eval_texts, reference_outputs)
    return {"model": tuned, "float_file": tuned_file, **report.to_dict(),
            "before": before.files["model"].quality, "float_drift": drift}


WORSE_BY = 0.005  # a tuned file this much under the post-training one on its first figure is refused


def _refuse_a_worse_tuning(before: dict | None, entry: FileEntry) -> None:
    """A fine-tune that leaves the file worse than post-training quantization alone is a
    wrong answer (measured: MiniLM in MobileBERT's graph at one rate for every weight, 0.815 -> 0.679):
    one line naming both figures; ``keep_below_floor`` keeps it."""
    from pocketbert.models.tasks import FLOORS

    after = entry.quality or {}
    figure = next((name for name in (*FLOORS, "output_closeness") if name in (before or {}) and name in after), None)
    if figure is not None and after[figure] < before[figure] - WORSE_BY:
        raise PocketbertError(
            f"{entry.path}: --finetune made it worse on held-out text: {figure} {after[figure]:.4f} against "
            f"{before[figure]:.4f} without it; quantize without --finetune, or keep it with --keep-below-floor")


def _tokenizer_or_none(directory: Path):
    """The artifact's tokenizer; None when it was exported without one (no real text then)."""
    from pocketbert.models.tokenizer import load_tokenizer

    try:
        return load_tokenizer(directory)
    except PocketbertError:
        return None


def _pytorch_model(source, manifest: Manifest):
    """The model a recipe that quantizes the PyTorch model needs when given a float
    artifact: the checkpoint it was exported from (its manifest's ``source``)."""
    from pocketbert.models import load_model

    origin = manifest.source
    try:
        return load_model(origin, task=manifest.task)
    except (PocketbertError, OSError, TypeError) as exc:
        raise PocketbertError(
            f"{manifest.format} recipes quantize the PyTorch model: {source} was exported from {origin}, "
            f"which cannot be loaded ({exc}); pass the checkpoint instead"
        ) from None


def _resolve_exclusions(fmt: Format, float_file: Path, exclude: tuple[str, ...]) -> list[str]:
    """Graph nodes (ONNX) or tensors (TFLite) each pattern matches; a pattern matching
    nothing is a warning (the recipe then quantizes everything it would have)."""
    if not exclude:
        return []
    matched = fmt.match(float_file, list(exclude))
    for pattern, names in matched.items():
        if not names:
            warnings.warn(f"--exclude {pattern!r} matches nothing in {float_file.name}", stacklevel=3)
    return sorted({n for names in matched.values() for n in names})
