"""``pocketbert bench``: latency of any input, or of the papers' protocols, with reports."""

from __future__ import annotations

import argparse
import sys

from pocketbert.commands.common import accelerator_names, at_least, non_negative, input_path, output_file
from pocketbert.commands.common import threads as thread_count
from pocketbert.commands.export import report
from pocketbert.errors import PocketbertError


def add_bench(sub: argparse._SubParsersAction) -> None:
    from pocketbert.benchmarks.harness import Settings
    from pocketbert.benchmarks.protocols import PROTOCOLS, format_files
    from pocketbert.contracts.options import deprecated_alias
    from pocketbert.formats import suffixes

    defaults = Settings()
    p = sub.add_parser(
        "bench",
        help="latency of checkpoints and exported files, or of the papers' protocols (JSON, Markdown, PNG)",
        description=f"Measure each INPUT (checkpoint dir, export dir, {'/'.join(suffixes())}, also files "
        "pocketbert did not export: inputs matched by name, else position; shapes from the file) like "
        "benchmark_model: init, first inference, warm-up, then timed runs (>= --num-runs and >= --min-secs); "
        "median, mean, p90, std, min, max, peak RSS, analytic GFLOP/s against a GEMM peak measured in the "
        "same run. --protocol runs a paper's preset (model vs BERT-base; created and exported under "
        "--work-dir when missing) and puts the paper's numbers beside the measured ones, or MLPerf Mobile's "
        "language task (MobileBERT int8, QA, seq 384, p90 latency).",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", type=input_path)
    p.add_argument("--compare", nargs="+", metavar="INPUT", type=input_path,
                   help="measure these inputs (ours or any foreign .onnx/.tflite/.pte/.pt) in interleaved rounds, "
                        "A B A B ..., and print each one's latency ratio to the first, round by round")
    p.add_argument("--lengths", nargs="?", const="corpus", metavar="TEXT_FILE", type=input_path,
                   help="time queries of a real text's lengths (one per line; default: the project corpus), each "
                        "padded to what the file takes (a bucketed .tflite: its smallest bucket that fits); "
                        "median and p90 are then per query, as in MLPerf's single stream")
    p.add_argument("--rounds", type=at_least(1), metavar="N",
                   help="interleaved rounds of --compare (default 3) and of each protocol's pair (default 1)")
    p.add_argument("--protocol", nargs="+", choices=[*PROTOCOLS, "all"], metavar="NAME",
                   help="one or more of: %(choices)s")
    p.add_argument("--quick", action="store_true",
                   help="protocols that fix their own query count and duration (MLPerf: >= 1024 queries, >= 60 s): "
                        "run only a few queries, and say the score is not a valid run")
    p.add_argument("--work-dir", default="out/models", metavar="DIR",
                   help="protocols: where the paper-size checkpoints and exports live (default: %(default)s)")
    p.add_argument("--formats", nargs="+", choices=list(format_files()), metavar="FORMAT",
                   help="protocols: formats to measure (default: the paper's; MLPerf's int8 file is its own "
                        "format's only); one of: %(choices)s")
    p.add_argument("--runtimes", dest="formats", nargs="+", choices=list(format_files()), help=argparse.SUPPRESS,
                   action=deprecated_alias("--runtimes", "--formats"))
    p.add_argument("--threads", nargs="+", type=thread_count, metavar="N",
                   help="thread counts to measure (default: the protocol's, else the runtime's default)")
    p.add_argument("--seq-len", type=at_least(1), default=defaults.seq_len)
    p.add_argument("--batch", type=at_least(1), default=defaults.batch)
    p.add_argument("--warmup-runs", type=at_least(0), default=defaults.warmup_runs)
    p.add_argument("--num-runs", type=at_least(1), default=defaults.num_runs)
    p.add_argument("--min-secs", type=non_negative, default=defaults.min_secs)
    p.add_argument("--accelerator", default=defaults.accelerator, choices=accelerator_names(),
                   help="what the files run on: cpu, or gpu for .tflite (LiteRT CompiledModel; an error, not a "
                        "CPU fallback, when unavailable)")
    p.add_argument("--device", default="host", metavar="host|adb[:SERIAL][,adb:SERIAL...]",
                   help="adb: run .tflite files on a phone with --benchmark-model; several adb:SERIAL, comma-separated: "
                        "a device pool, every INPUT measured on each phone, the phones at once (one queue each)")
    p.add_argument("--benchmark-model", metavar="PATH", help="with --device adb: TFLite's benchmark_model for the phone")
    p.add_argument("--taskset", metavar="MASK", help="with --device adb: pin to these cores (e.g. f0 = big cores)")
    p.add_argument("--json", metavar="FILE", type=output_file)
    p.add_argument("--markdown", metavar="FILE", type=output_file)
    p.add_argument("--plot", metavar="FILE.png", type=output_file)
    p.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from pocketbert import api

    if args.plot and not args.plot.endswith(".png"):  # before minutes of timing, not after
        raise PocketbertError(f"--plot {args.plot}: the chart is a PNG (FILE.png)")
    result = api.bench(
        args.inputs, compare=args.compare, protocols=args.protocol, threads=args.threads, rounds=args.rounds,
        quick=args.quick, work_dir=args.work_dir, formats=args.formats, device=args.device, progress=sys.stderr.isatty(),
        seq_len=args.seq_len, batch=args.batch, warmup_runs=args.warmup_runs, num_runs=args.num_runs,
        min_secs=args.min_secs, accelerator=args.accelerator, lengths=args.lengths, benchmark_model=args.benchmark_model,
        taskset=args.taskset)
    report(result)
    for written in result.write(args.json, args.markdown, args.plot):
        print(f"wrote {written}", file=sys.stderr)
    return 0
