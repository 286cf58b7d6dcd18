"""``pocketbert export`` and ``android-assets``."""

from __future__ import annotations

import argparse

from pocketbert.commands.common import (add_format_flags, at_least, format_flag_values, input_path, non_negative, output_path,
                                        task_names)



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


def report(result, text: str | None = None) -> int:
    """A result as the CLI shows it: its text (or ``text``) on stdout, its warnings on stderr
    after the work."""
    import sys

    print(result if text is None else text)
    for line in result.notices():
        print(f"pocketbert: {line}", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from pocketbert import api

    return report(api.export(
        args.model, args.format, args.output, task=args.task, seq_len=args.seq_len, batch=args.batch, static=args.static,
        dynamic=args.dynamic, atol=args.atol, quantize=args.quantize, calibration=args.calibration, force=args.force,
        require_trained_head=args.require_trained_head, keep_below_floor=args.keep_below_floor,
        **format_flag_values(args)))


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
    from pocketbert import api

    return report(api.android_assets(args.artifact, args.assets_dir, force=args.force))
