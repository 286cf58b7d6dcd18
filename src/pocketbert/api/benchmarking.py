"""Latency: any inputs, interleaved comparisons, the papers' protocols, phones in a pool."""

from __future__ import annotations

import warnings as python_warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pocketbert.api.checks import checked, non_negative, positive, threads as thread_count
from pocketbert.api.result import Result
from pocketbert.contracts.options import at_least
from pocketbert.errors import PocketbertError


@dataclass(frozen=True)
class BenchReport(Result):
    """``report``: the JSON schema of ``bench --json`` (host, measurements, comparisons,
    protocols, GEMM peaks)."""

    report: dict
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        from pocketbert.benchmarks.report import to_markdown

        return to_markdown(self.report).rstrip("\n").split("\n")

    def records(self) -> list[dict]:
        return [dict(row) for row in self.report["measurements"]]

    def write(self, json: str | Path | None = None, markdown: str | Path | None = None,
              plot: str | Path | None = None) -> list[Path]:
        """The report as JSON, Markdown and a PNG chart, each written atomically."""
        from pocketbert.benchmarks.report import write_reports

        if plot and not str(plot).endswith(".png"):
            raise PocketbertError(f"--plot {plot}: the chart is a PNG (FILE.png)")
        return write_reports(self.report, json, markdown, plot)


@dataclass(frozen=True)
class Timing:
    """How each input is timed (``checked``: the harness's defaults for what is not given)."""

    seq_len: int
    batch: int
    warmup_runs: int
    num_runs: int
    min_secs: float
    accelerator: str
    lengths: str | None = None  # "corpus" or a text file: per-query lengths
    benchmark_model: str | None = None
    taskset: str | None = None

    @classmethod
    def checked(cls, **given) -> "Timing":
        from pocketbert.benchmarks.harness import Settings

        defaults = Settings()
        values = {name: given.get(name) for name in ("seq_len", "batch", "warmup_runs", "num_runs", "min_secs")}
        values = {name: getattr(defaults, name) if value is None else value for name, value in values.items()}
        return cls(seq_len=positive("seq_len", values["seq_len"]), batch=positive("batch", values["batch"]),
                   warmup_runs=checked("warmup_runs", values["warmup_runs"], at_least(0)),
                   num_runs=positive("num_runs", values["num_runs"]),
                   min_secs=checked("min_secs", values["min_secs"], non_negative),
                   accelerator=given.get("accelerator") or defaults.accelerator, lengths=given.get("lengths"),
                   benchmark_model=given.get("benchmark_model"), taskset=given.get("taskset"))


def bench(inputs: Sequence[str | Path] = (), *, compare: Sequence[str | Path] | None = None,
          protocols: Sequence[str] | None = None, threads: Sequence[int] | None = None, rounds: int | None = None,
          quick: bool = False, work_dir: str | Path = "out/models", formats: Sequence[str] | None = None,
          device: str = "host", progress: bool = False, **timing) -> BenchReport:
    """Measure each input (checkpoint dir, export dir, model file, also files pocketbert did
    not export) like benchmark_model; ``compare``: these inputs in interleaved rounds with
    their ratios to the first; ``protocols``: the papers' presets ("all" for every one).
    ``timing``: seq_len, batch, warmup_runs, num_runs, min_secs, accelerator, lengths,
    benchmark_model, taskset (``Timing``)."""
    from rich.progress import Progress

    from pocketbert.benchmarks import protocols as presets
    from pocketbert.benchmarks.flops import gemm_peak_gflops, int8_gemm_peak_gops
    from pocketbert.benchmarks.harness import available_cores, warn_oversubscribed
    from pocketbert.benchmarks.report import build_report

    unknown = set(timing) - {f for f in Timing.__dataclass_fields__}
    if unknown:
        raise PocketbertError(f"bench: unknown option {sorted(unknown)[0]} (known: {', '.join(Timing.__dataclass_fields__)})")
    settings = Timing.checked(**timing)
    inputs = [str(path) for path in inputs]
    threads = [checked("threads", n, thread_count) for n in threads or []]
    rounds = positive("rounds", rounds)
    if not inputs and not protocols and not compare:
        raise PocketbertError("give INPUT files to measure, --compare A B, or --protocol (see pocketbert bench --help)")
    if compare is not None and len(compare) < 2:
        raise PocketbertError("--compare needs at least two inputs (the first is what the others are divided by)")
    for path in [*inputs, *(compare or [])]:
        if not Path(path).exists():
            raise PocketbertError(f"{path}: no such file or directory")
    devices = _devices(device)
    if len(devices) > 1:
        if compare or protocols:
            raise PocketbertError("--device with several phones measures INPUT files on each; --compare and --protocol "
                                  "take one device")
        measured = [m.to_dict() for m in _on_each_device(inputs, threads, settings, devices)]
        return _finished(build_report(measured, [], {}, [], {}))
    measure_fresh = _measure_function(settings, device)
    protocol_rounds = rounds or 1
    measure_one = _measured_once(measure_fresh) if protocol_rounds == 1 else measure_fresh
    names = list(presets.PROTOCOLS) if protocols and "all" in protocols else list(protocols or [])
    chosen = [presets.get_protocol(name) for name in names]
    thread_counts = set(threads)
    for protocol in chosen:
        thread_counts |= set(threads or [protocol.threads or available_cores()])
    for count in thread_counts:
        warn_oversubscribed(count)

    measurements, protocol_results, comparisons = [], [], []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("benchmark", total=None)

        def status(text: str) -> None:
            bar.update(task, description=text)

        for path in inputs:
            for count in threads or [None]:
                status(f"{path}, {count or 'default'} thread(s)")
                measurements.append(measure_one(Path(path), count, settings.seq_len, settings.batch, None))
        for count in threads or [None] if compare else []:
            comparison = _compare(measure_fresh, [str(p) for p in compare], count, settings, rounds or 3, status)
            measurements += comparison.pop("measurements")
            comparisons.append(comparison)
        for protocol in chosen:
            counts = threads or [protocol.threads or available_cores()]
            result = presets.run_protocol(protocol, Path(work_dir), protocol.formats_for(formats), counts, measure_one,
                                          status, protocol_rounds, _quantize, quick)
            measurements += [m for m in result.measurements if not any(m is seen for seen in measurements)]
            protocol_results.append(result.to_dict())
        host_threads = sorted({m.threads for m in measurements if m.device == "host" and m.threads})
        peaks, int8_peaks = {}, {}
        for count in host_threads:
            status(f"GEMM peak, {count} thread(s)")
            peaks[str(count)] = gemm_peak_gflops(count)
            if any(m.arithmetic == "int8" for m in measurements):
                int8_peaks[str(count)] = int8_gemm_peak_gops(count)
    return _finished(build_report([m.to_dict() for m in measurements], protocol_results, peaks, comparisons, int8_peaks))


def compare(inputs: Sequence[str | Path], *, rounds: int = 3, threads: Sequence[int] | None = None,
            **timing) -> BenchReport:
    """``inputs`` timed in interleaved rounds (A B A B ...) and each one's latency ratio to
    the first, round by round: the side-by-side claim, on one machine at one time."""
    return bench(compare=inputs, rounds=rounds, threads=threads, **timing)


def _finished(report: dict) -> BenchReport:
    from pocketbert.benchmarks.report import noise_warning

    warning = noise_warning(report["measurements"])
    return BenchReport(report, (f"warning: {' '.join(warning.split())}",) if warning else ())


def _compare(measure_one, inputs: list[str], threads, base: Timing, rounds: int, status) -> dict:
    """``inputs`` in interleaved rounds at ``threads``; rows named by the path given when two
    would share a label (two exports of one architecture)."""
    from pocketbert.benchmarks.interleave import combined, interleaved, ratio_rows

    if len({str(Path(path).resolve()) for path in inputs}) < len(inputs):
        python_warnings.warn("--compare lists a file twice: its ratio to itself is this machine's noise, not a difference")
    jobs = [(Path(path), threads, base.seq_len, base.batch, None) for path in inputs]
    per_input = interleaved(measure_one, jobs, rounds, status)
    labels = [rounds_of[0].label for rounds_of in per_input]
    if len(set(labels)) < len(labels):
        for index, (name, rounds_of) in enumerate(zip(inputs, per_input)):
            label = name if inputs.count(name) == 1 else f"{name} [{index + 1}]"  # the same file twice
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
    """A protocol's int8 file, made the way ``quantize`` makes it."""
    from pocketbert.quantize import quantize_model

    # a work file to time (the protocol's recipe, paper-size random weights): kept whatever its quality
    quantize_model(export_dir, recipe, out_dir, task=task, force=True, keep_below_floor=True)


def _devices(text: str) -> list[str]:
    """``device``'s devices: host, adb, adb:SERIAL, or a pool of distinct adb:SERIAL."""
    devices = [d.strip() for d in text.split(",")]
    if len(devices) > 1:
        bad = [d for d in devices if not (d.startswith("adb:") and len(d) > 4)]
        if bad:
            raise PocketbertError(f"--device {text}: a device pool lists phones as adb:SERIAL, got {bad[0]!r}")
        if len(set(devices)) < len(devices):
            raise PocketbertError(f"--device {text}: a phone is listed twice (each phone is one queue)")
    return devices


def _on_each_device(inputs: list[str], threads: list[int], settings: Timing, devices: list[str]) -> list:
    """Every input at every thread count on each phone: one queue per phone, so a phone runs
    one benchmark at a time, and the phones at once (adb and benchmark_model wait on the
    phone, not on this machine's cores)."""
    from concurrent.futures import ThreadPoolExecutor

    queues = {device: _measure_function(settings, device) for device in devices}  # every device's options checked first

    def queue(device: str) -> list:
        return [queues[device](Path(path), count, settings.seq_len, settings.batch, None)
                for path in inputs for count in threads or [None]]

    with ThreadPoolExecutor(max_workers=len(devices)) as phones:
        return [m for measured in phones.map(queue, devices) for m in measured]


def _measure_function(timing: Timing, device: str):
    """``(path, threads, seq_len, batch, label) -> Measurement`` on this host or on a phone."""
    from pocketbert.benchmarks.harness import Settings, measure
    from pocketbert.benchmarks.lengths import query_lengths

    base = Settings(warmup_runs=timing.warmup_runs, num_runs=timing.num_runs, min_secs=timing.min_secs,
                    accelerator=timing.accelerator)
    if device == "host":
        if timing.benchmark_model or timing.taskset:
            raise PocketbertError("--benchmark-model and --taskset need --device adb[:SERIAL]")

        lengths = {}

        def on_host(path, threads, seq_len, batch, label, runs=None):
            settings = replace(base, threads=threads, seq_len=seq_len, batch=batch)
            if runs:  # the protocol's own minimums (MLPerf's 1024 queries and 60 s)
                settings = replace(settings, num_runs=runs[0], min_secs=runs[1])
            if timing.lengths:
                if path not in lengths:
                    lengths[path] = query_lengths(Path(path), None if timing.lengths == "corpus" else timing.lengths)
                settings = replace(settings, lengths=lengths[path])
            return measure(path, settings, label)

        return on_host
    kind, _, serial = device.partition(":")
    if kind != "adb":
        raise PocketbertError(f"--device {device}: expected host, adb or adb:SERIAL")
    if timing.lengths:
        raise PocketbertError("--lengths with --device adb: benchmark_model times one fixed input")
    if timing.accelerator != "cpu":
        raise PocketbertError(f"--accelerator {timing.accelerator} with --device adb: benchmark_model on the phone "
                              "times its CPU path here (use its own --use_gpu through android_demo)")
    if not timing.benchmark_model:
        raise PocketbertError("--device adb needs --benchmark-model PATH (TFLite's benchmark_model built for the phone)")
    from pocketbert.benchmarks.device import run_benchmark_model
    from pocketbert.benchmarks.harness import annotate

    def on_device(path, threads, seq_len, batch, label, runs=None):
        if Path(path).suffix != ".tflite":
            raise PocketbertError(f"{path}: --device adb runs .tflite files (benchmark_model is LiteRT's tool)")
        num_runs, min_secs = runs or (base.num_runs, base.min_secs)
        result = run_benchmark_model(Path(path), Path(timing.benchmark_model), serial or None, threads or 4,
                                     base.warmup_runs, num_runs, min_secs, taskset_mask=timing.taskset)
        result.label = label or result.label
        return annotate(result, Path(path))

    return on_device
