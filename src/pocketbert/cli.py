"""The ``pocketbert`` command: a thin layer over the library.

Every user mistake surfaces as one line ``pocketbert: error: ...`` and exit code 2
(argparse's convention); warnings print as one line each. Tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
import time
import warnings
from collections.abc import Callable, Sequence

from pocketbert import __version__
from pocketbert.errors import PocketbertError

EXIT_USAGE = 2


def _architecture_names() -> list[str]:
    from pocketbert.models.registry import ARCHITECTURES

    return list(ARCHITECTURES)


def _task_names() -> list[str]:
    from pocketbert.models.registry import TASKS

    return list(TASKS)


# ---- pocketbert create ----------------------------------------------------------------------
def add_create(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "create",
        help="write a randomly initialised paper-size checkpoint directory",
        description="Write config.json + model.safetensors of the paper-size architecture with "
        "random weights (deterministic per --seed). The default model of benchmarks and demos, "
        "since nothing can be downloaded here.",
    )
    p.add_argument("arch", choices=_architecture_names(), metavar="ARCH", help="one of: %(choices)s")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--task", choices=_task_names(), metavar="TASK", help="head to add (default: fill-mask)")
    p.add_argument("--layers", type=int, help="number of layers (default: the paper's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab", metavar="VOCAB_TXT", help="use this vocab.txt as is (default: the project's trained vocabulary)")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    p.set_defaults(run=run_create)


def run_create(args: argparse.Namespace) -> int:
    from pocketbert.models import create_checkpoint

    start = time.perf_counter()
    model = create_checkpoint(
        args.arch, args.out_dir, args.task, args.layers, args.seed, args.force, vocab_file=args.vocab
    )
    print(
        f"wrote {args.out_dir}: {type(model).__name__}, {model.config.num_hidden_layers} layers, "
        f"{model.num_parameters() / 1e6:.2f}M parameters, seed {args.seed} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 0


# ---- pocketbert models ----------------------------------------------------------------------
def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list architectures, their tasks and parameter counts against the papers",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--names", action="store_true", help="print only the architecture names, one per line")
    p.set_defaults(run=run_models)


def run_models(args: argparse.Namespace) -> int:
    from pocketbert.models.summary import architecture_summaries

    if args.names:
        print("\n".join(_architecture_names()))
        return 0
    rows = architecture_summaries()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'architecture':<12} {'params (M)':>10} {'paper (M)':>12}  {'ok':<3} {'paper':<30} tasks")
    for r in rows:
        low, high = r["paper_params_millions"]
        print(
            f"{r['architecture']:<12} {r['params_millions']:>10.2f} {f'{low}-{high}':>12}  "
            f"{'yes' if r['matches_paper'] else 'NO':<3} {r['paper']:<30} {', '.join(r['tasks'])}"
        )
    return 0


# ---- pocketbert info -------------------------------------------------------------------------
def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="load a checkpoint (directory or hub id) and describe it",
        description="Load MODEL strictly (every weight checked against the architecture) and print "
        "its class, inputs, outputs and size. Exit code 2 if it does not load.",
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint directory or Hugging Face hub id")
    p.add_argument("--task", choices=_task_names(), metavar="TASK", help="head to load (default: from config.json)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    from pocketbert.models import load_model

    model = load_model(args.model, task=args.task)
    info = {
        "class": type(model).__name__,
        "model_type": model.config.model_type,
        "task": model.task,
        "layers": model.config.num_hidden_layers,
        "parameters": model.num_parameters(),
        "inputs": list(model.input_names),
        "outputs": list(model.output_names),
        "checkpoint": str(model.checkpoint_dir),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:<11} {', '.join(value) if isinstance(value, list) else value}")
    return 0


# ---- pocketbert run ----------------------------------------------------------------------------
def _pipeline_tasks() -> list[str]:
    from pocketbert.pipelines import PIPELINES

    return list(PIPELINES)


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a task pipeline on text (arguments, or one input per line on stdin)",
        description="Run a task on each TEXT, or on each line of stdin when no TEXT is given. "
        "Pair inputs are tab-separated: question<TAB>context, sentence<TAB>sentence, "
        "prompt<TAB>choice<TAB>choice...",
    )
    p.add_argument("--task", required=True, choices=_pipeline_tasks(), metavar="TASK", help="one of: %(choices)s")
    p.add_argument("--model", required=True, metavar="MODEL", help="checkpoint directory or hub id")
    p.add_argument("text", nargs="*", metavar="TEXT")
    p.add_argument("--top-k", type=int, default=None, help="answers per input (fill-mask default 5, others 1)")
    p.add_argument("--context", help="question answering: the context every question is asked about")
    p.add_argument("--aggregation", default="first", help="token-classification: none, simple, first, average, max")
    p.add_argument("--no-truncation", action="store_true", help="error on inputs longer than the model allows")
    p.add_argument("--threads", type=int, help="intra-op threads")
    p.add_argument("--device", default="cpu", help="only cpu is supported")
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.set_defaults(run=run_run)


def _read_stdin_lines() -> list[str]:
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PocketbertError(f"stdin is not UTF-8 (line {line}, byte {exc.start})") from None
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def _task_input(task: str, line: str, context: str | None):
    parts = line.split("\t")
    if task == "question-answering":
        if context is not None:
            return (line, context)
        if len(parts) != 2:
            raise PocketbertError(f"question answering needs a context: use --context or 'question<TAB>context' ({line[:40]!r})")
        return tuple(parts)
    if task == "next-sentence-prediction":
        if len(parts) != 2:
            raise PocketbertError(f"next-sentence prediction needs 'sentence<TAB>sentence' ({line[:40]!r})")
        return tuple(parts)
    if task == "multiple-choice":
        if len(parts) < 3:
            raise PocketbertError(f"multiple choice needs 'prompt<TAB>choice<TAB>choice...' ({line[:40]!r})")
        return tuple(parts)
    if task == "text-classification" and len(parts) == 2:
        return tuple(parts)
    return line


def _print_human(task: str, text: str, result) -> None:
    print(text.replace("\t", " | "))
    rows = result if task != "fill-mask" or not result or isinstance(result[0], dict) else [r for mask in result for r in mask]
    for row in rows:
        score = f"{row.get('score', 0.0):.4f}"
        if task == "fill-mask":
            print(f"  {score}  {row['token_str']:<15} {row['sequence']}")
        elif task == "question-answering":
            print(f"  {score}  {row['answer']!r} [{row['start']}:{row['end']}]")
        elif task == "multiple-choice":
            print(f"  {score}  {row['choice']}")
        elif task == "token-classification":
            label = row.get("entity_group", row.get("entity"))
            print(f"  {score}  {label:<12} {row['word']!r} [{row['start']}:{row['end']}]")
        else:
            print(f"  {score}  {row['label']}")


def run_run(args: argparse.Namespace) -> int:
    from pocketbert.pipelines import pipeline

    if args.device != "cpu":
        raise PocketbertError(f"device {args.device!r} is not available: pocketbert runs models on the CPU")
    lines = args.text or _read_stdin_lines()
    if not lines or not any(line.strip() for line in lines):
        raise PocketbertError("empty input: give TEXT arguments or lines on stdin")
    items = [_task_input(args.task, line, args.context) for line in lines]  # check before loading
    pipe = pipeline(args.task, args.model, threads=args.threads, truncation=not args.no_truncation)
    options = {}
    if args.top_k is not None:
        options["top_k"] = args.top_k
    if args.task == "token-classification":
        options["aggregation"] = args.aggregation
    for line, item in zip(lines, items):
        result = pipe(item, **options)
        if args.json:
            print(json.dumps({"input": line, "result": result}, ensure_ascii=False))
        else:
            _print_human(args.task, line, result)
    return 0


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
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--task", choices=_task_names(), metavar="TASK", help="head to export (default: from config.json)")
    p.add_argument("--format", required=True, choices=list(FORMATS), help="one of: %(choices)s (tflite is always static)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR")
    p.add_argument("--seq-len", type=int, default=defaults.seq_len, help="sequence length (static) or example length")
    p.add_argument("--batch", type=int, default=defaults.batch)
    p.add_argument("--static", action="store_true", help="fixed batch and sequence length (delegates want them)")
    p.add_argument("--opset", type=int, default=defaults.opset, help="ONNX opset (>= 17; default %(default)s)")
    p.add_argument("--atol", type=float, default=defaults.atol, help="validation tolerance (max abs diff)")
    p.add_argument("--ort", action="store_true", help="onnx: also write model.ort for ONNX Runtime Mobile")
    p.add_argument("--optimize", action="store_true", help="onnx: also write onnxruntime's fused transformer graph")
    p.add_argument("--quantize", metavar="RECIPE", help="apply a recipe of this format (see pocketbert quantize)")
    p.add_argument("--calibration", metavar="FILE", help="with --quantize: calibration text for static recipes")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from pocketbert.export import ExportOptions, export_model

    if args.quantize:
        from pocketbert.quantize import get_recipe

        get_recipe(args.quantize, args.format)  # a recipe of another format is an error
        args.source, args.recipe, args.exclude = args.model, args.quantize, []
        return run_quantize(args)

    options = ExportOptions(
        seq_len=args.seq_len, batch=args.batch, static=args.static, opset=args.opset, atol=args.atol,
        ort=args.ort, optimize=args.optimize,
    )
    manifest = export_model(args.model, args.task, args.format, args.output, options, force=args.force)
    print(f"wrote {args.output}: {manifest['model_class']} as {manifest['format']} in {manifest['export_seconds']} s")
    for role, entry in manifest["files"].items():
        check = entry["validation"]
        print(
            f"  {entry['path']:<22} {entry['bytes'] / 1e6:8.1f} MB  max abs diff {check['max_abs_diff']:.2e} "
            f"(atol {check['atol']:g}, {len(check['cases'])} input shapes)"
        )
    return 0


# ---- pocketbert android-assets ---------------------------------------------------------------------
def add_android_assets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "android-assets",
        help="copy a .tflite export into android_demo's assets",
        description="Copy model.tflite, vocab.txt, manifest.json, config.json and labels.txt of a TFLite "
        "export to ASSETS_DIR (android_demo/app/src/main/assets).",
    )
    p.add_argument("artifact", metavar="ARTIFACT", help="directory written by pocketbert export --format tflite")
    p.add_argument("assets_dir", metavar="ASSETS_DIR")
    p.set_defaults(run=run_android_assets)


def run_android_assets(args: argparse.Namespace) -> int:
    from pocketbert.export.android_assets import write_android_assets

    written = write_android_assets(args.artifact, args.assets_dir)
    print(f"wrote {', '.join(written)} to {args.assets_dir}")
    return 0


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
    p.add_argument("source", metavar="ARTIFACT_OR_MODEL")
    p.add_argument("--recipe", required=True, choices=list(RECIPES), metavar="RECIPE", help="one of: %(choices)s")
    p.add_argument("-o", "--output", metavar="OUT_DIR", help="the quantized export (with --scan: a JSON report)")
    p.add_argument("--task", choices=_task_names(), metavar="TASK", help="head (checkpoints only; default: from config.json)")
    p.add_argument("--calibration", metavar="FILE", help=".txt (a line each), .jsonl or .tsv with a text column")
    p.add_argument("--scan", action="store_true",
                   help="quantize one block at a time and rank blocks by the error they add")
    p.add_argument("--exclude", nargs="+", default=[], metavar="PATTERN",
                   help="keep matching layers in float (regex over node/tensor/module names)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--force", action="store_true")
    p.set_defaults(run=run_quantize)


def run_quantize(args: argparse.Namespace) -> int:
    from pocketbert.quantize import quantize_model

    if getattr(args, "scan", False):
        return run_scan(args)
    if not args.output:
        raise PocketbertError("-o OUT_DIR is required (except with --scan)")
    manifest = quantize_model(
        args.source, args.recipe, args.output, task=args.task, calibration_file=args.calibration,
        exclude=tuple(args.exclude), seq_len=args.seq_len, force=args.force,
    )
    print(f"wrote {args.output}: {manifest['model_class']} with {args.recipe}")
    for entry in manifest["files"].values():
        for output, figures in entry["agreement_with_float"].items():
            top1 = figures["top1_agreement"]
            print(
                f"  {entry['path']:<12} {entry['bytes'] / 1e6:7.1f} MB (float {entry['float_bytes'] / 1e6:.1f})  {output}: "
                f"max abs diff {figures['max_abs_diff']:.3g}, cosine {figures['cosine']:.4f}"
                + (f", top-1 agreement {top1:.3f}" if top1 is not None else "")
            )
    return 0


def run_scan(args: argparse.Namespace) -> int:
    from pocketbert.quantize.scan import scan

    rows = scan(args.source, args.recipe, task=args.task, seq_len=args.seq_len, calibration_file=args.calibration)
    print(f"{'block':<24} {'mean abs diff':>14} {'max abs diff':>13} {'top-1':>7}   (worst first, {args.recipe})")
    for row in rows:
        top1 = "-" if row["top1_agreement"] is None else f"{row['top1_agreement']:.3f}"
        print(f"{row['block']:<24} {row['mean_abs_diff']:>14.4g} {row['max_abs_diff']:>13.4g} {top1:>7}")
    if args.output:
        Path(args.output).write_text(json.dumps({"recipe": args.recipe, "blocks": rows}, indent=2) + "\n")
    return 0


# ---- pocketbert quantize-sweep ----------------------------------------------------------------------
def add_sweep(sub: argparse._SubParsersAction) -> None:
    from pocketbert.export import FORMATS
    from pocketbert.quantize.recipes import RECIPES

    p = sub.add_parser(
        "quantize-sweep",
        help="every recipe against float: size, latency, agreement, accuracy (JSON, Markdown, PNG)",
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint directory")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS), metavar="FORMAT")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), metavar="RECIPE")
    p.add_argument("--eval-data", metavar="FILE", help="labelled text (.tsv/.jsonl with text and label) for accuracy")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--runs", type=int, default=20, help="timed runs per file")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="sweep.json, sweep.md, sweep.png")
    p.set_defaults(run=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    from pocketbert.quantize.sweep import sweep

    rows = sweep(args.model, args.formats, args.recipes, args.output, eval_data=args.eval_data,
                 threads=args.threads, seq_len=args.seq_len, runs=args.runs, progress=sys.stderr.isatty())
    print((Path(args.output) / "sweep.md").read_text(), end="")
    print(f"wrote {len(rows)} rows to {args.output}/sweep.json, sweep.md, sweep.png")
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_android_assets, add_create, add_export, add_info, add_models, add_quantize, add_run, add_sweep,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pocketbert",
        description="Compact BERTs from PyTorch to the files an Android app ships, with parity and latency checks.",
    )
    parser.add_argument("--version", action="version", version=f"pocketbert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    print(f"pocketbert: warning: {text}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        return args.run(args)
    except PocketbertError as exc:
        print(f"pocketbert: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pocketbert: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
