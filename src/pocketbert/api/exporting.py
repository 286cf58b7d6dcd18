"""Export a checkpoint to the files an app ships, and copy a .tflite export into an app."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from pocketbert.api.checks import checked, non_negative, positive, refuse_overlap
from pocketbert.api.result import Result
from pocketbert.contracts.artifact import Manifest
from pocketbert.errors import PocketbertError


@dataclass(frozen=True)
class Written(Result):
    """An export directory pocketbert wrote, with its manifest (what ``Artifact.open`` reads
    back). ``checks``: an accelerator's verdict on it (``accelerator=``)."""

    directory: Path
    manifest: Manifest
    checks: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def records(self) -> list[dict]:
        m = self.manifest
        return [{"directory": str(self.directory), "file": entry.path, "format": m.format, "model_class": m.model_class,
                 "task": m.task, "bytes": entry.bytes, "sha256": entry.sha256,
                 "recipe": (m.quantization or {}).get("name"), **_figures(entry)} for entry in m.files.values()]


def _figures(entry) -> dict:
    """A file's checks as flat numbers: the float export's validation, a quantized file's
    quality on real text."""
    found = {}
    if entry.validation:
        found["max_abs_diff"] = entry.validation.get("max_abs_diff")
    for name, value in (entry.quality or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[name] = value
    return found


@dataclass(frozen=True)
class Exported(Written):
    def lines(self) -> list[str]:
        m = self.manifest
        out = [f"wrote {self.directory}: {m.model_class} as {m.format} in {m.export_seconds} s"]
        for entry in m.files.values():
            check = entry.validation
            out.append(f"  {entry.path:<22} {entry.bytes / 1e6:8.1f} MB  max abs diff {check['max_abs_diff']:.2e} "
                       f"(atol {check['atol']:g}, {len(check['cases'])} input shapes)")
        return out + list(self.checks)


def untrained_warnings(task: str, untrained: list[str], deprecated: str | None = None) -> tuple[str, ...]:
    """Untrained weights (a manifest's or a pipeline's) and a deprecated format's note."""
    from pocketbert.export import untrained_summary

    return tuple([f"WARNING: {untrained_summary(task, untrained)}"] * bool(untrained)
                 + [f"note: {deprecated}"] * bool(deprecated))


def export(model: str | Path, format: str, out_dir: str | Path, *, task: str | None = None, seq_len: int | None = None,
           batch: int = 1, static: bool = False, dynamic: bool = False, atol: float | None = None,
           quantize: str | None = None, calibration: str | Path | None = None, force: bool = False,
           require_trained_head: bool = False, keep_below_floor: bool = False, **format_options) -> Written:
    """Export ``model`` (a checkpoint directory or hub id) to ``out_dir``: the model file(s),
    config, tokenizer and manifest, every file validated against PyTorch. ``quantize`` applies
    a recipe of the format (a ``Quantized`` comes back); ``format_options`` are the format's
    own (``accelerator="npu"``, ``seq_lens=(32, 128)`` ...), refused for another format."""
    from pocketbert.contracts.options import AcceleratorOptions
    from pocketbert.export import ExportOptions

    refuse_overlap([str(model), *([str(calibration)] if calibration else [])], [str(out_dir)])
    own = _own_options(format, format_options)
    if seq_len is not None and getattr(own, "seq_lens", ()):
        raise PocketbertError("--seq-len and --seq-lens: give one (the buckets are the file's lengths)")
    options = ExportOptions(
        seq_len=positive("seq_len", seq_len) or ExportOptions().seq_len, batch=positive("batch", batch),
        static=static, dynamic=dynamic, atol=ExportOptions().atol if atol is None else checked("atol", atol, non_negative),
        require_trained_head=require_trained_head, format_options=own,
    )
    accelerator = own.accelerator if isinstance(own, AcceleratorOptions) else ""
    if accelerator:
        quantize = _accelerator_recipe(format, accelerator, quantize)
    if quantize:
        from pocketbert.api.quantizing import quantize as quantize_file
        from pocketbert.quantize import get_recipe

        get_recipe(quantize, format)  # a recipe of another format is an error
        written = quantize_file(model, quantize, out_dir, task=task, calibration=calibration, force=force,
                                export_options=options, keep_below_floor=keep_below_floor)
    else:
        from pocketbert.export import export_model

        manifest = export_model(model, task, format, out_dir, options, force=force)
        written = Exported(Path(out_dir), manifest,
                           warnings=untrained_warnings(manifest.task, manifest.untrained_weights, manifest.deprecated))
    return _verified(written, accelerator) if accelerator else written


def _own_options(format: str, given: dict):
    """The format's own options from keywords; a keyword of another format (or of none) is
    refused in one line, as its flag is."""
    from pocketbert.contracts.options import foreign_option_error
    from pocketbert.formats import FORMATS, get_format

    fmt = get_format(format)
    foreign = [name for name in given if name not in fmt.option_type.field_names()]
    if foreign:
        known = {name for f in FORMATS.values() for name in f.option_type.field_names()}
        if foreign[0] not in known:
            raise PocketbertError(f"{foreign[0]}: no format has this option (known: {', '.join(sorted(known))})")
        raise PocketbertError(foreign_option_error(FORMATS.values(), foreign[0]))
    return fmt.option_type(**given)


def _accelerator_recipe(format: str, accelerator: str, quantize: str | None) -> str | None:
    """The recipe an accelerator's file needs (a format's ``accelerator_recipes``)."""
    from pocketbert.formats import get_format

    made_for = get_format(format).accelerator_recipes
    needed = made_for.get(accelerator)
    if needed is None:
        raise PocketbertError(f"--accelerator {accelerator}: {format} exports are made for "
                              f"{', '.join(made_for) or 'no accelerator'}")
    if needed and quantize and quantize != needed:
        raise PocketbertError(f"--accelerator {accelerator} needs --quantize {needed}, not {quantize}")
    return quantize or needed or None


def _verified(written: Written, accelerator: str) -> Written:
    """The written export checked by that accelerator's checks; a refused file is removed
    (the user asked for a file that accelerator takes, not for this one)."""
    import shutil

    from pocketbert.contracts.artifact import write_manifest
    from pocketbert.export.inspection import verify_accelerator

    try:
        section = verify_accelerator(written.directory, accelerator)
    except (PocketbertError, KeyboardInterrupt):  # refused, or Ctrl-C/SIGTERM mid-check: no unproven file stays
        shutil.rmtree(written.directory, ignore_errors=True)
        raise
    manifest = dataclasses.replace(written.manifest, accelerator_check=section)
    write_manifest(written.directory, manifest)
    if section["verified"]:
        checks = (f"  --accelerator {accelerator}: fully taken by {', '.join(section['fully_taken_by'])}",)
        return dataclasses.replace(written, manifest=manifest, checks=checks)
    reasons = "; ".join(f"{k}: {v}" for k, v in section["not_checked"].items())
    warning = (f"WARNING: --accelerator {accelerator} not verified here: no {accelerator.upper()} check could run "
               f"({reasons})")
    return dataclasses.replace(written, manifest=manifest, warnings=(*written.warnings, warning))


@dataclass(frozen=True)
class AndroidAssets(Result):
    assets_dir: Path
    files: tuple[str, ...]

    def lines(self) -> list[str]:
        return [f"wrote {', '.join(self.files)} to {self.assets_dir}"]

    def records(self) -> list[dict]:
        return [{"assets_dir": str(self.assets_dir), "file": name} for name in self.files]


def android_assets(artifact: str | Path, assets_dir: str | Path, force: bool = False) -> AndroidAssets:
    """Copy a .tflite export's five files into an app's assets directory, all or none."""
    from pocketbert.export.android_assets import write_android_assets

    return AndroidAssets(Path(assets_dir), tuple(write_android_assets(artifact, assets_dir, force=force)))
