"""``pocketbert quantize`` (with ``--scan``) and ``quantize-sweep``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pocketbert.commands.common import (add_pool_options, at_least, input_path, output_file, output_path, regex, task_names,
                                        threads)
from pocketbert.commands.export import add_keep_below_floor, add_require_trained_head, report
from pocketbert.errors import PocketbertError
from pocketbert.contracts.spec import DEFAULT_SEQUENCE_LENGTH



# ---- pocketbert quantize ---------------------------------------------------------------------------
def add_quantize(sub: argparse._SubParsersAction) -> None:
    from pocketbert.quantize.recipes import RECIPES

    p = sub.add_parser(
        "quantize",
        help="apply an int8/float16 recipe to a checkpoint or a float export",
        description="Quantize SOURCE (a checkpoint, exported to the recipe's format first, or a float "
        "export of that format) with RECIPE into OUT_DIR; the manifest records the recipe, the "
        "calibration and the agreement with the float model.",
    )
    p.add_argument("source", metavar="ARTIFACT_OR_MODEL", type=input_path)
    from pocketbert.formats import FORMATS

    p.add_argument("--recipe", choices=list(RECIPES), metavar="RECIPE", help="one of: %(choices)s")
    p.add_argument("--format", choices=list(FORMATS), metavar="FORMAT",
                   help="with --target: search this format's recipes (one of: %(choices)s)")
    p.add_argument("--target", metavar="METRIC>=VALUE",
                   help="write the fastest file of --format keeping this quality on real text, e.g. "
                        "cosine_mean>=0.995 or agreement>=0.98 (recipes, then blocks kept in float)")
    p.add_argument("--threads", type=threads, default=1, help="with --target: threads the candidates are timed with")
    add_pool_options(p)
    p.add_argument("-o", "--output", metavar="OUT_DIR", type=output_path, help="the quantized export (with --scan: a JSON report)")
    p.add_argument("--task", choices=task_names(), metavar="TASK", help="head (checkpoints only; default: from config.json)")
    p.add_argument("--calibration", metavar="FILE", type=input_path, help="text for the static recipes' ranges and the ONNX per-token recipes' smoothing: "
                   ".txt (a line each), .jsonl or .tsv with a text column")
    add_eval_text(p)
    p.add_argument("--scan", action="store_true",
                   help="quantize one block at a time and rank blocks by the error they add")
    p.add_argument("--exclude", nargs="+", default=[], metavar="PATTERN", type=regex,
                   help="keep matching layers in float (regex over node/tensor/module names)")
    p.add_argument("--seq-len", type=at_least(1), default=DEFAULT_SEQUENCE_LENGTH)
    p.add_argument("--finetune", type=at_least(1), metavar="STEPS",
                   help="first fine-tune the float weights STEPS steps with the recipe's integer rounding emulated, "
                        "against the float model's own outputs on the calibration text (no labels); "
                        "tflite-full-integer-* recipes")
    p.add_argument("--seed", type=int, default=0, help="with --finetune: the text order and the initial state")
    p.add_argument("--force", action="store_true")
    add_require_trained_head(p)
    add_keep_below_floor(p)
    p.set_defaults(run=run_quantize)


def add_eval_text(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval-text", metavar="FILE", type=input_path,
                   help="real sentences to measure quality on (.txt a line each, .jsonl/.tsv with a text column; "
                        "default: the held-out text, 240 sentences, 48 short texts and 16 long ones, "
                        "never the calibration text)")


def run_quantize(args: argparse.Namespace) -> int:
    from pocketbert import api

    if args.finetune and (args.target or args.scan):
        raise PocketbertError("--finetune takes one --recipe (not --target or --scan)")
    if args.target is not None or args.format:
        return run_target(args)
    if args.workers or args.ray:
        raise PocketbertError("--workers/--ray spread a search's candidates: they go with --target (or quantize-sweep)")
    if not args.recipe:
        raise PocketbertError("give --recipe RECIPE, or --format FORMAT --target METRIC>=VALUE")
    if args.scan:
        return run_scan(args)
    if not args.output:
        raise PocketbertError("-o OUT_DIR is required (except with --scan)")
    return report(api.quantize(
        args.source, args.recipe, args.output, task=args.task, calibration=args.calibration, exclude=args.exclude,
        seq_len=args.seq_len, finetune=args.finetune, seed=args.seed, eval_text=args.eval_text, force=args.force,
        require_trained_head=args.require_trained_head, keep_below_floor=args.keep_below_floor,
        progress=sys.stderr.isatty()))


def run_target(args: argparse.Namespace) -> int:
    from pocketbert import api

    if args.recipe or not (args.format and args.target is not None and args.output):
        raise PocketbertError("--target takes --format FORMAT and -o OUT_DIR, and no --recipe (it picks one)")
    return report(api.quantize_to_target(
        args.source, args.format, args.target, args.output, task=args.task, calibration=args.calibration,
        seq_len=args.seq_len, threads=args.threads, force=args.force, eval_text=args.eval_text,
        keep_below_floor=args.keep_below_floor, workers=args.workers, ray=args.ray,
        progress=lambda line: print(f"  {line}", file=sys.stderr)))


def run_scan(args: argparse.Namespace) -> int:
    from pocketbert import api
    from pocketbert.atomic import atomic_file

    if args.output:  # the report's path is checked before the scan, not after minutes of it
        try:
            output_file(args.output)
        except argparse.ArgumentTypeError as exc:
            raise PocketbertError(f"-o: {exc}") from None
    result = api.scan(args.source, args.recipe, task=args.task, seq_len=args.seq_len, calibration=args.calibration,
                      eval_text=args.eval_text)
    print(result)
    if args.output:
        with atomic_file(args.output) as tmp:
            Path(tmp).write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return 0


# ---- pocketbert quantize-sweep ----------------------------------------------------------------------
def add_sweep(sub: argparse._SubParsersAction) -> None:
    from pocketbert.formats import FORMATS
    from pocketbert.quantize.recipes import RECIPES

    p = sub.add_parser(
        "quantize-sweep",
        help="every recipe against float: size, latency, agreement, accuracy (JSON, Markdown, PNG)",
    )
    p.add_argument("model", metavar="MODEL", nargs="+", type=input_path, help="checkpoint directories (rows per model)")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS), metavar="FORMAT")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), metavar="RECIPE")
    p.add_argument("--eval-data", metavar="FILE", type=input_path, help="labelled text (.tsv/.jsonl with text and label) for accuracy")
    p.add_argument("--task", choices=task_names(), metavar="TASK",
                   help="head to export (default: from config.json; text-classification with --eval-data)")
    p.add_argument("--threads", type=threads, default=1)
    p.add_argument("--seq-len", type=at_least(1), default=DEFAULT_SEQUENCE_LENGTH)
    p.add_argument("--runs", type=at_least(1), default=20, help="timed runs per file")
    p.add_argument("--calibration", nargs="+", metavar="FILE", type=input_path,
                   help="calibration texts (.txt, .jsonl, .tsv): the calibrated recipes get a row per file")
    add_eval_text(p)
    add_pool_options(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", type=output_path,
                   help="sweep.json, sweep.md, sweep.png (an interrupted sweep keeps its finished jobs in OUT_DIR/.jobs: "
                        "the same command again resumes)")
    p.set_defaults(run=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    from pocketbert import api

    result = api.sweep(args.model, args.output, formats=args.formats, recipes=args.recipes, eval_data=args.eval_data,
                       task=args.task, threads=args.threads, seq_len=args.seq_len, runs=args.runs,
                       calibration=args.calibration, eval_text=args.eval_text, workers=args.workers, ray=args.ray,
                       progress=sys.stderr.isatty())
    print(result)
    print(f"wrote {len(result.rows)} rows to {args.output}/sweep.json, sweep.md, sweep.png")
    return 0
