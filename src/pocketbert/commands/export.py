"""``pocketbert export`` and ``android-assets``."""

from __future__ import annotations

import argparse

from pocketbert.commands.common import (add_format_flags, at_least, format_options, input_path, non_negative, output_path,
                                        task_names)
from pocketbert.errors import PocketbertError



# ---- pocketbert export -------------------------------------------------------------------------
def add_export(sub: argparse._SubParsersAction) -> None:
    from pocketbert.export import FORMATS, ExportOptions

    defaults = ExportOptions()
    p = sub.add_parser(
        "export",
        help="export a checkpoint to an Android-ready file, validated against PyTorch",
        description="Export MODEL (checkpoint directory or hub id) to OUT_DIR: the model file(s), config, "
        "tokenizer files and manifest.json. Every file is validated against the PyTorch model on fresh "
        "inputs; a failed export leaves nothing behind.",
    )
    p.add_argument("model", metavar="MODEL", type=input_path)
    p.add_argument("--task", choices=task_names(), metavar="TASK", help="head to export (default: from config.json)")
    p.add_argument("--format", required=True, choices=list(FORMATS), metavar="FORMAT",
                   help="; ".join(f"{name}: {fmt.note}" for name, fmt in FORMATS.items()))
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", type=output_path)
    p.add_argument("--seq-len", type=at_least(1), help=f"sequence length (static) or example length "
                                                        f"(default {defaults.seq_len}; --seq-lens replaces it)")
    p.add_argument("--batch", type=at_least(1), default=defaults.batch)
    p.add_argument("--static", action="store_true", help="fixed batch and sequence length (delegates want them)")
    p.add_argument("--dynamic", action="store_true",
                   help="executorch: dynamic batch (1-8) and sequence length (the default of onnx and torchscript)")
    p.add_argument("--atol", type=non_negative, default=defaults.atol, help="validation tolerance (max abs diff)")
    p.add_argument("--quantize", metavar="RECIPE", help="apply a recipe of this format (see pocketbert quantize)")
    p.add_argument("--calibration", metavar="FILE", type=input_path, help="with --quantize: calibration text for static recipes")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    add_format_flags(p)  # each format's own (Format.option_type), refused for another format
    add_require_trained_head(p)
    add_keep_below_floor(p)
    p.set_defaults(run=run_export)


def add_require_trained_head(p: argparse.ArgumentParser) -> None:
    p.add_argument("--require-trained-head", action="store_true",
                   help="error (exit 2) when the checkpoint lacks the task's head instead of warning")


def add_keep_below_floor(p: argparse.ArgumentParser) -> None:
    from pocketbert.quality.gate import KEEP_FLAG

    p.add_argument(KEEP_FLAG, action="store_true",
                   help="write a quantized file even when it measures under the quality floors on real text "
                        "(default: one line naming the figure and the floor, exit 2, nothing written)")


def warn_below_floor(manifest) -> None:
    """A file kept under the floors on request, loudly: it does not compute the model."""
    import sys

    for name, lines in ((manifest.quantization or {}).get("below_floor") or {}).items():
        print(f"pocketbert: WARNING: {name} kept under the quality floors: {'; '.join(lines)}", file=sys.stderr)


def warn_untrained(task: str, untrained: list[str], deprecated: str | None = None) -> None:
    """Untrained weights (a manifest's or a checkpoint's), loudly, and a deprecated format's
    note, after the work is reported."""
    import sys

    from pocketbert.export import untrained_summary

    if untrained:
        print(f"pocketbert: WARNING: {untrained_summary(task, untrained)}", file=sys.stderr)
    if deprecated:
        print(f"pocketbert: note: {deprecated}", file=sys.stderr)


def run_export(args: argparse.Namespace) -> int:
    from pocketbert.contracts.options import AcceleratorOptions
    from pocketbert.export import ExportOptions

    own = format_options(args, args.format)
    if args.seq_len is not None and getattr(own, "seq_lens", ()):
        raise PocketbertError("--seq-len and --seq-lens: give one (the buckets are the file's lengths)")
    options = ExportOptions(
        seq_len=args.seq_len if args.seq_len is not None else ExportOptions().seq_len,
        batch=args.batch, static=args.static, dynamic=args.dynamic, atol=args.atol,
        require_trained_head=args.require_trained_head, format_options=own,
    )
    accelerator = own.accelerator if isinstance(own, AcceleratorOptions) else ""
    if not accelerator:
        return _export(args, options)
    from pocketbert.formats import get_format

    made_for = get_format(args.format).accelerator_recipes
    needed = made_for.get(accelerator)
    if needed is None:
        raise PocketbertError(f"--accelerator {accelerator}: {args.format} exports are made for "
                              f"{', '.join(made_for) or 'no accelerator'}")
    if needed and args.quantize and args.quantize != needed:
        raise PocketbertError(f"--accelerator {accelerator} needs --quantize {needed}, not {args.quantize}")
    args.quantize = args.quantize or needed or None
    status = _export(args, options)
    _verify_accelerator(args.output, accelerator)
    return status


def _verify_accelerator(output: str, accelerator: str) -> None:
    """Check the written export with that accelerator's checks; a refused file is removed
    (the user asked for a file that accelerator takes, not for this one)."""
    import dataclasses
    import shutil

    from pocketbert.export.inspection import verify_accelerator
    from pocketbert.contracts.artifact import Artifact, write_manifest

    try:
        section = verify_accelerator(output, accelerator)
    except (PocketbertError, KeyboardInterrupt):  # refused, or Ctrl-C/SIGTERM mid-check: no unproven file stays
        shutil.rmtree(output, ignore_errors=True)
        raise
    artifact = Artifact.open(output)
    write_manifest(artifact.directory, dataclasses.replace(artifact.manifest, accelerator_check=section))
    if section["verified"]:
        print(f"  --accelerator {accelerator}: fully taken by {', '.join(section['fully_taken_by'])}")
    else:
        import sys

        reasons = "; ".join(f"{k}: {v}" for k, v in section["not_checked"].items())
        print(f"pocketbert: WARNING: --accelerator {accelerator} not verified here: no {accelerator.upper()} check could run "
              f"({reasons})", file=sys.stderr)


def _export(args: argparse.Namespace, options) -> int:
    from pocketbert.export import export_model

    if args.quantize:
        from pocketbert.commands.quantize import run_quantize
        from pocketbert.quantize import get_recipe

        get_recipe(args.quantize, args.format)  # a recipe of another format is an error
        args.source, args.recipe, args.exclude, args.export_options = args.model, args.quantize, [], options
        return run_quantize(args)
    manifest = export_model(args.model, args.task, args.format, args.output, options, force=args.force)
    print(f"wrote {args.output}: {manifest.model_class} as {manifest.format} in {manifest.export_seconds} s")
    for entry in manifest.files.values():
        check = entry.validation
        print(
            f"  {entry.path:<22} {entry.bytes / 1e6:8.1f} MB  max abs diff {check['max_abs_diff']:.2e} "
            f"(atol {check['atol']:g}, {len(check['cases'])} input shapes)"
        )
    warn_untrained(manifest.task, manifest.untrained_weights, manifest.deprecated)
    return 0


# ---- pocketbert android-assets ---------------------------------------------------------------------
def add_android_assets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "android-assets",
        help="copy a .tflite export into an Android app's assets directory",
        description="Copy model.tflite, vocab.txt, manifest.json, config.json and labels.txt of a TFLite "
        "export into ASSETS_DIR, an app's assets directory (android_demo/app/src/main/assets). The five files "
        "are replaced together or not at all (a failure, a full disk or Ctrl-C leaves ASSETS_DIR as it was); "
        "the app's other files there are never touched. Refused: a file, the export itself or a directory "
        "inside it, another export directory (manifest.json without labels.txt), a checkpoint.",
    )
    p.add_argument("artifact", metavar="ARTIFACT", help="directory written by pocketbert export --format tflite")
    p.add_argument("assets_dir", metavar="ASSETS_DIR")
    p.add_argument("--force", action="store_true", help="replace the asset files of an earlier run in ASSETS_DIR")
    p.set_defaults(run=run_android_assets)


def run_android_assets(args: argparse.Namespace) -> int:
    from pocketbert.export.android_assets import write_android_assets

    written = write_android_assets(args.artifact, args.assets_dir, force=args.force)
    print(f"wrote {', '.join(written)} to {args.assets_dir}")
    return 0
