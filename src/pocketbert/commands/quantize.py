"""``pocketbert quantize`` (with ``--scan``) and ``quantize-sweep``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pocketbert.commands.common import (add_pool_options, at_least, input_path, output_file, output_path, pool_from, regex,
                                        task_names, threads)
from pocketbert.commands.export import add_keep_below_floor, add_require_trained_head, warn_below_floor, warn_untrained
from pocketbert.errors import PocketbertError
from pocketbert.contracts.format import ExportOptions
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


def eval_texts(path) -> list[str] | None:
    """Sentences to measure quality on: .txt a line each, .jsonl/.tsv with a text column;
    None without --eval-text (the library's held-out sentences)."""
    from pocketbert.quantize.calibration import read_texts

    return None if path is None else [text for text, _ in read_texts(path, what="eval")]


def run_quantize(args: argparse.Namespace) -> int:
    from pocketbert.quality import metrics as quality
    from pocketbert.quantize import FinetuneOptions, quantize_model

    if getattr(args, "finetune", None) and (getattr(args, "target", None) or getattr(args, "scan", False)):
        raise PocketbertError("--finetune takes one --recipe (not --target or --scan)")
    if getattr(args, "target", None) is not None or getattr(args, "format", None) and not getattr(args, "quantize", None):
        return run_target(args)
    if getattr(args, "workers", None) or getattr(args, "ray", None):
        raise PocketbertError("--workers/--ray spread a search's candidates: they go with --target (or quantize-sweep)")
    if not args.recipe:
        raise PocketbertError("give --recipe RECIPE, or --format FORMAT --target METRIC>=VALUE")
    from pocketbert.quantize import get_recipe

    if args.calibration and not get_recipe(args.recipe).needs_calibration:
        raise PocketbertError(f"--calibration: recipe {args.recipe} is not calibrated (dynamic or weight-only); "
                              "use a static recipe or leave --calibration out")
    if getattr(args, "scan", False):
        return run_scan(args)
    if not args.output:
        raise PocketbertError("-o OUT_DIR is required (except with --scan)")
    # export --quantize: every export option; quantize: the length and the head check
    options = getattr(args, "export_options", None) or ExportOptions(
        seq_len=args.seq_len, require_trained_head=args.require_trained_head)
    steps = getattr(args, "finetune", None)
    manifest = quantize_model(
        args.source, args.recipe, args.output, task=args.task, calibration_file=args.calibration,
        exclude=tuple(args.exclude), force=args.force, options=options,
        eval_texts=eval_texts(getattr(args, "eval_text", None)),
        keep_below_floor=args.keep_below_floor,
        finetune=None if steps is None else FinetuneOptions(steps=steps, seed=args.seed),
        progress=sys.stderr.isatty(),
    )
    print(f"wrote {args.output}: {manifest.model_class} with {args.recipe}")
    tuning = manifest.quantization.get("finetune")
    if tuning:
        print(f"  fine-tuned {tuning['steps']} steps in {tuning['seconds']:.0f} s (loss {tuning['first_loss']:.4f} -> "
              f"{tuning['last_loss']:.4f}); without it: {quality.summary(tuning['before'])}")
        print(f"  the tuned float model against the original: {quality.summary(tuning['float_drift'])}")
    for entry in manifest.files.values():
        print(f"  {entry.path:<12} {entry.bytes / 1e6:7.1f} MB (float {entry.float_bytes / 1e6:.1f})")
        print(f"    {manifest.task} quality vs float: "
              + (quality.summary(entry.quality) if entry.quality else "not measured (the artifact has no tokenizer)"))
        for output, figures in entry.agreement_with_float.items():
            top1 = figures["top1_agreement"]
            print(f"    random ids (numerical check) {output}: max abs diff {figures['max_abs_diff']:.3g}, "
                  f"mean abs diff {figures['mean_abs_diff']:.3g}"
                  + (f", top-1 agreement {top1:.3f}" if top1 is not None else ""))
    warn_untrained(manifest.task, manifest.untrained_weights, manifest.deprecated)
    warn_below_floor(manifest)
    return 0


def run_target(args: argparse.Namespace) -> int:
    from pocketbert.quantize.target import quantize_to_target

    if args.recipe or not (args.format and args.target is not None and args.output):
        raise PocketbertError("--target takes --format FORMAT and -o OUT_DIR, and no --recipe (it picks one)")
    with pool_from(args) as pool:
        manifest = quantize_to_target(
            args.source, args.format, args.target, args.output, task=args.task, calibration_file=args.calibration,
            seq_len=args.seq_len, threads=args.threads, force=args.force, progress=lambda line: print(f"  {line}", file=sys.stderr),
            eval_texts=eval_texts(args.eval_text), keep_below_floor=args.keep_below_floor, pool=pool,
        )
    search = manifest.quantization["target_search"]
    metric = search["target"]["metric"]
    print(f"{'candidate':<48} {metric:>16} {'ms':>9} {'MB':>7}   (tuning half, {search['threads']} thread(s))")
    for row in search["candidates"]:
        value = "-" if row[metric] is None else f"{row[metric]:.4f}"
        print(f"{row['candidate']:<48} {value:>16} {row.get('median_ms', float('nan')):>9.2f} {row['bytes'] / 1e6:>7.1f}")
    chosen = next(row for row in search["candidates"] if row["candidate"] == search["chosen"])
    print(f"wrote {args.output}: {search['chosen']}, {metric} {chosen['held_out'][metric]:.4f} on "
          f"{search['held_out_sentences']} held-out sentences (target {search['target']['floor']:g})")
    return 0


def run_scan(args: argparse.Namespace) -> int:
    from pocketbert.atomic import atomic_file
    from pocketbert.quantize.scan import scan

    if args.output:  # the report's path is checked before the scan, not after minutes of it
        try:
            output_file(args.output)
        except argparse.ArgumentTypeError as exc:
            raise PocketbertError(f"-o: {exc}") from None
    rows = scan(args.source, args.recipe, task=args.task, seq_len=args.seq_len, calibration_file=args.calibration,
                eval_texts=eval_texts(args.eval_text))
    print(f"{'block':<24} {'real text':>10} {'mean abs diff':>14} {'max abs diff':>13} {'top-1':>7}   "
          f"(worst first, {args.recipe}; real text: the task's figure on held-out sentences)")
    for row in rows:
        top1 = "-" if row["top1_agreement"] is None else f"{row['top1_agreement']:.3f}"
        real = "-" if row["real_text"] is None else f"{row['real_text']:.4f}"
        print(f"{row['block']:<24} {real:>10} {row['mean_abs_diff']:>14.4g} {row['max_abs_diff']:>13.4g} {top1:>7}")
    if args.output:
        with atomic_file(args.output) as tmp:
            Path(tmp).write_text(json.dumps({"recipe": args.recipe, "blocks": rows}, indent=2) + "\n")
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
    from pocketbert.quantize.sweep import sweep

    with pool_from(args) as pool:
        rows = sweep(args.model, args.formats, args.recipes, args.output, eval_data=args.eval_data,
                     threads=args.threads, seq_len=args.seq_len, runs=args.runs, progress=sys.stderr.isatty(), task=args.task,
                     eval_texts=eval_texts(args.eval_text), pool=pool, calibration_files=args.calibration)
    print((Path(args.output) / "sweep.md").read_text(), end="")
    print(f"wrote {len(rows)} rows to {args.output}/sweep.json, sweep.md, sweep.png")
    return 0
