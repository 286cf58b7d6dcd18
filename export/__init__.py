"""PyTorch -> every registered format, validated, in an artifact directory.

``export_model(checkpoint, task, format, out_dir)`` loads the checkpoint and hands it to
``export_loaded``, which writes the format's file(s) into a temporary directory, validates
every file against the PyTorch model on fresh inputs, adds config, tokenizer and manifest,
and only then renames the directory into place: a failed export leaves nothing behind.
What a format exports and how its files run is its plugin's (``pocketbert.formats``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from pocketbert.atomic import atomic_directory, check_free_space
from pocketbert.errors import PocketbertError
from pocketbert.quality.validate import validate
from pocketbert.formats import FORMATS, get_format, runner_for_file
from pocketbert.models.modeling import PreTrainedModel
from pocketbert.contracts.artifact import (FileEntry, Manifest, TensorEntry, sha256, versions, write_manifest,
                                           write_support_files)
from pocketbert.contracts.format import ExportOptions, Format
from pocketbert.contracts.options import FormatOptions, foreign_option_error
from pocketbert.contracts.runner import TorchRunner
from pocketbert.contracts.spec import ExportSpec

__all__ = ["FORMATS", "ExportOptions", "check_trained", "export_loaded", "export_model", "plan", "untrained_summary"]


def check_options(fmt: Format, options: ExportOptions) -> None:
    """Options of another format are a mistake, not a no-op: an options object of another
    format's type is refused by its first field that format lacks ("--ort and --optimize
    apply to --format onnx only"), else by its type."""
    own = options.format_options
    if own is None or type(own) in (fmt.option_type, FormatOptions):
        return
    foreign = [name for name in own.non_default() if name not in fmt.option_type.field_names()]
    if foreign:
        raise PocketbertError(foreign_option_error(FORMATS.values(), foreign[0]))
    raise PocketbertError(f"{type(own).__name__} are not --format {fmt.name}'s options "
                          f"(its own: {fmt.option_type.__name__})")


def untrained_summary(task: str, untrained: list[str]) -> str:
    """One line on weights a checkpoint lacked: what is random and what to do about it."""
    shown = ", ".join(untrained[:3]) + (f" and {len(untrained) - 3} more" if len(untrained) > 3 else "")
    return (f"the {task} head is untrained ({shown} not in the checkpoint, newly initialised): "
            "its outputs are random until it is fine-tuned")


def check_trained(where: object, task: str, untrained: list[str], required: bool) -> None:
    """--require-trained-head: the one refusal export, quantize and run share."""
    if required and untrained:
        raise PocketbertError(f"{where}: {untrained_summary(task, untrained)} (--require-trained-head)")


def plan(model: PreTrainedModel, fmt_name: str, options: ExportOptions) -> tuple[Format, ExportSpec]:
    """The format and the spec an export of ``model`` with ``options`` will have (checked
    before any work)."""
    fmt = get_format(fmt_name)
    check_options(fmt, options)
    static = fmt.is_static(options)
    return fmt, ExportSpec.for_model(model, batch=options.batch, sequence=options.seq_len, static=static,
                                     buckets=options.buckets)


def export_model(
    model_ref: str | Path,
    task: str | None,
    fmt: str,
    out_dir: str | Path,
    options: ExportOptions = ExportOptions(),
    force: bool = False,
) -> Manifest:
    from pocketbert.models import load_model

    check_options(get_format(fmt), options)  # before loading weights
    get_format(fmt).is_static(options)
    model = load_model(model_ref, task=task)
    return export_loaded(model, fmt, out_dir, options, force=force, source=str(model_ref))


def export_loaded(model: PreTrainedModel, fmt_name: str, out_dir: str | Path, options: ExportOptions = ExportOptions(),
                  force: bool = False, source: str | None = None) -> Manifest:
    """Export a model already in memory (quantize hands its model on instead of reloading).
    Returns the manifest as written."""
    fmt, spec = plan(model, fmt_name, options)
    check_trained(source or getattr(model, "checkpoint_dir", "the model"), model.task, model.untrained_weights,
                  options.require_trained_head)
    # everything known before the export; the runners that validate the files read its names
    draft = Manifest(
        format=fmt.name,
        architecture=model.config.model_type,
        model_class=type(model).__name__,
        task=model.task,
        source=source if source is not None else str(getattr(model, "checkpoint_dir", "") or ""),
        inputs=[TensorEntry.from_dict(row) for row in spec.manifest_inputs(fmt.input_dtype)],
        outputs=[TensorEntry.from_dict(row) for row in spec.manifest_outputs()],
        static=spec.static,
        spec=spec.to_dict(),
        untrained_weights=list(model.untrained_weights),
        deprecated=fmt.deprecated or None,
        options=options.to_dict(fmt),
        versions=versions(),
    )
    # each file the format may write holds the float32 weights (+10% and 20 MB for the rest)
    check_free_space(out_dir, int(model.num_parameters() * 4 * len(fmt.files) * 1.1) + 20_000_000,
                     f"a {fmt.name} export of {type(model).__name__}")
    protect = [getattr(model, "checkpoint_dir", None), source]
    with atomic_directory(out_dir, force=force, protect=[p for p in protect if p]) as tmp:
        start = time.perf_counter()
        files, details = fmt.export(model, spec, tmp, options)
        export_seconds = time.perf_counter() - start
        reference = TorchRunner(model)
        entries = {}
        for role, name in files.items():
            runner = runner_for_file(tmp / name, draft)
            figures = validate(reference, runner, spec, model.config.vocab_size, options.atol, label=name)
            entries[role] = FileEntry(name, sha256(tmp / name), (tmp / name).stat().st_size, validation=figures)
        manifest = write_manifest(tmp, dataclasses.replace(
            draft, files=entries, tokenizer_files=write_support_files(model, tmp), details=details,
            export_seconds=round(export_seconds, 2)))
    return manifest
