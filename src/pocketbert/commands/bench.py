"""``pocketbert bench``: latency of any input, or of the papers' protocols, with reports."""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from pocketbert.commands.common import accelerator_names, at_least, non_negative, input_path, output_file
from pocketbert.commands.common import threads as thread_count
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
    from rich.progress import Progress

    from pocketbert.benchmarks import protocols as presets
    from pocketbert.benchmarks.flops import gemm_peak_gflops, int8_gemm_peak_gops
    from pocketbert.benchmarks.harness import Settings, available_cores, warn_oversubscribed
    from pocketbert.benchmarks.report import build_report

    if not args.inputs and not args.protocol and not args.compare:
        raise PocketbertError("give INPUT files to measure, --compare A B, or --protocol (see pocketbert bench --help)")
    if args.compare is not None and len(args.compare) < 2:
        raise PocketbertError("--compare needs at least two inputs (the first is what the others are divided by)")
    for path in [*args.inputs, *(args.compare or [])]:
        if not Path(path).exists():
            raise PocketbertError(f"{path}: no such file or directory")
    if args.plot and not args.plot.endswith(".png"):
        raise PocketbertError(f"--plot {args.plot}: the chart is a PNG (FILE.png)")
    devices = _devices(args.device)
    if len(devices) > 1:
        if args.compare or args.protocol:
            raise PocketbertError("--device with several phones measures INPUT files on each; --compare and --protocol "
                                  "take one device")
        return _print_and_write(args, build_report([m.to_dict() for m in _on_each_device(args, devices)], [], {}, [], {}))
    measure_fresh = _measure_function(args, args.device)
    protocol_rounds = args.rounds or 1
    measure_one = _measured_once(measure_fresh) if protocol_rounds == 1 else measure_fresh
    base = Settings(seq_len=args.seq_len, batch=args.batch, warmup_runs=args.warmup_runs,
                    num_runs=args.num_runs, min_secs=args.min_secs)
    names = list(presets.PROTOCOLS) if args.protocol and "all" in args.protocol else args.protocol or []
    chosen = [presets.get_protocol(name) for name in names]
    thread_counts = set(args.threads or [])
    for protocol in chosen:
        thread_counts |= set(args.threads or [protocol.threads or available_cores()])
    for threads in thread_counts:
        warn_oversubscribed(threads)

    measurements, protocol_results, comparisons = [], [], []
    with Progress(disable=not sys.stderr.isatty(), transient=True) as bar:
        task = bar.add_task("benchmark", total=None)

        def status(text: str) -> None:
            bar.update(task, description=text)

        for path in args.inputs:
            for threads in args.threads or [None]:
                status(f"{path}, {threads or 'default'} thread(s)")
                measurements.append(measure_one(Path(path), threads, base.seq_len, base.batch, None))
        for threads in args.threads or [None] if args.compare else []:
            comparison = _compare(measure_fresh, args.compare, threads, base, args.rounds or 3, status)
            measurements += comparison.pop("measurements")
            comparisons.append(comparison)
        for protocol in chosen:
            threads = args.threads or [protocol.threads or available_cores()]
            result = presets.run_protocol(protocol, Path(args.work_dir), protocol.formats_for(args.formats),
                                          threads, measure_one, status, protocol_rounds, _quantize, args.quick)
            measurements += [m for m in result.measurements if not any(m is seen for seen in measurements)]
            protocol_results.append(result.to_dict())
        host_threads = sorted({m.threads for m in measurements if m.device == "host" and m.threads})
        peaks, int8_peaks = {}, {}
        for threads in host_threads:
            status(f"GEMM peak, {threads} thread(s)")
            peaks[str(threads)] = gemm_peak_gflops(threads)
            if any(m.arithmetic == "int8" for m in measurements):
                int8_peaks[str(threads)] = int8_gemm_peak_gops(threads)

    return _print_and_write(args, build_report([m.to_dict() for m in measurements], protocol_results, peaks, comparisons,
                                               int8_peaks))


def _print_and_write(args: argparse.Namespace, report: dict) -> int:
    from pocketbert.benchmarks.report import noise_warning, to_markdown, write_reports

    print(to_markdown(report))
    warning = noise_warning(report["measurements"])
    if warning:
        warnings.warn(warning, stacklevel=1)
    for written in write_reports(report, args.json, args.markdown, args.plot):
        print(f"wrote {written}", file=sys.stderr)
    return 0


def _compare(measure_one, inputs: list[str], threads, base, rounds: int, status) -> dict:
    """``inputs`` in interleaved rounds at ``threads``; rows named by the path given when two
    would share a label (two exports of one architecture)."""
    from pocketbert.benchmarks.interleave import combined, interleaved, ratio_rows

    if len({str(Path(path).resolve()) for path in inputs}) < len(inputs):
        warnings.warn("--compare lists a file twice: its ratio to itself is this machine's noise, not a difference")
    jobs = [(Path(path), threads, base.seq_len, base.batch, None) for path in inputs]
    per_input = interleaved(measure_one, jobs, rounds, status)
    labels = [rounds_of[0].label for rounds_of in per_input]
    if len(set(labels)) < len(labels):
        named = [str(path) for path in inputs]
        for index, (name, rounds_of) in enumerate(zip(named, per_input)):
            label = name if named.count(name) == 1 else f"{name} [{index + 1}]"  # the same file twice
            for m in rounds_of:
                m.label = label
    return {"threads": threads, "rounds": rounds, "baseline": per_input[0][0].label,
            "rows": ratio_rows(per_input), "measurements": [combined(r) for r in per_input]}


def _measured_once(measure_one):
    """Protocols share BERT-base: measure each (file, threads, seq len, batch, runs) once per run."""
    done = {}

    def cached(path, threads, seq_len, batch, label, runs=None):
        key = (str(Path(path).resolve()), threads, seq_len, batch, runs)
        if key not in done:
            done[key] = measure_one(path, threads, seq_len, batch, label, runs=runs)
        return done[key]

    return cached


def _quantize(export_dir: Path, recipe: str, out_dir: Path, task: str) -> None:
    """A protocol's int8 file, made the way `pocketbert quantize` makes it."""
    from pocketbert.quantize import quantize_model

    # a work file to time (the protocol's recipe, paper-size random weights): kept whatever its quality
    quantize_model(export_dir, recipe, out_dir, task=task, force=True, keep_below_floor=True)


def _devices(text: str) -> list[str]:
    """``--device``'s devices: host, adb, adb:SERIAL, or a pool of distinct adb:SERIAL."""
    devices = [d.strip() for d in text.split(",")]
    if len(devices) > 1:
        bad = [d for d in devices if not (d.startswith("adb:") and len(d) > 4)]
        if bad:
            raise PocketbertError(f"--device {text}: a device pool lists phones as adb:SERIAL, got {bad[0]!r}")
        if len(set(devices)) < len(devices):
            raise PocketbertError(f"--device {text}: a phone is listed twice (each phone is one queue)")
    return devices


def _on_each_device(args: argparse.Namespace, devices: list[str]) -> list:
    """Every INPUT at every --threads on each phone: one queue per phone, so a phone runs one
    benchmark at a time, and the phones at once (adb and benchmark_model wait on the phone,
    not on this machine's cores)."""
    from concurrent.futures import ThreadPoolExecutor

    queues = {device: _measure_function(args, device) for device in devices}  # every device's options checked first

    def queue(device: str) -> list:
        return [queues[device](Path(path), threads, args.seq_len, args.batch, None)
                for path in args.inputs for threads in args.threads or [None]]

    with ThreadPoolExecutor(max_workers=len(devices)) as phones:
        return [m for measured in phones.map(queue, devices) for m in measured]


def _measure_function(args: argparse.Namespace, device: str):
    """``(path, threads, seq_len, batch, label) -> Measurement`` on this host or on a phone."""
    from pocketbert.benchmarks.harness import Settings, measure
    from pocketbert.benchmarks.lengths import query_lengths

    base = Settings(warmup_runs=args.warmup_runs, num_runs=args.num_runs, min_secs=args.min_secs,
                    accelerator=args.accelerator)
    if device == "host":
        if args.benchmark_model or args.taskset:
            raise PocketbertError("--benchmark-model and --taskset need --device adb[:SERIAL]")

        lengths = {}

        def on_host(path, threads, seq_len, batch, label, runs=None):
            settings = replace(base, threads=threads, seq_len=seq_len, batch=batch)
            if runs:  # the protocol's own minimums (MLPerf's 1024 queries and 60 s)
                settings = replace(settings, num_runs=runs[0], min_secs=runs[1])
            if args.lengths:
                if path not in lengths:
                    lengths[path] = query_lengths(Path(path), None if args.lengths == "corpus" else args.lengths)
                settings = replace(settings, lengths=lengths[path])
            return measure(path, settings, label)

        return on_host
    kind, _, serial = device.partition(":")
    if kind != "adb":
        raise PocketbertError(f"--device {device}: expected host, adb or adb:SERIAL")
    if args.lengths:
        raise PocketbertError("--lengths with --device adb: benchmark_model times one fixed input")
    if args.accelerator != "cpu":
        raise PocketbertError(f"--accelerator {args.accelerator} with --device adb: benchmark_model on the phone "
                              "times its CPU path here (use its own --use_gpu through android_demo)")
    if not args.benchmark_model:
        raise PocketbertError("--device adb needs --benchmark-model PATH (TFLite's benchmark_model built for the phone)")
    from pocketbert.benchmarks.device import run_benchmark_model
    from pocketbert.benchmarks.harness import annotate

    def on_device(path, threads, seq_len, batch, label, runs=None):
        if Path(path).suffix != ".tflite":
            raise PocketbertError(f"{path}: --device adb runs .tflite files (benchmark_model is LiteRT's tool)")
        num_runs, min_secs = runs or (base.num_runs, base.min_secs)
        result = run_benchmark_model(Path(path), Path(args.benchmark_model), serial or None, threads or 4,
                                     base.warmup_runs, num_runs, min_secs, taskset_mask=args.taskset)
        result.label = label or result.label
        return annotate(result, Path(path))

    return on_device
