"""The papers' latency protocols as presets, and the models they measure.

Each protocol fixes what the paper fixed (format, threads, sequence length, batch, the
model pair) and carries the paper's figures, so a run here prints the measured latency and
speedup beside them. Phones and this machine differ by a constant-ish factor per format;
the *ratio* to the baseline (BERT-base) is what should reproduce.

"format" is what a protocol times (a format_files() key: tflite, onnx, pytorch eager ...),
not the engine that runs it (contracts/format.py's ``Format.runtime``: litert ...).
A run's rows are benchmarks/rows.py's typed records; labels are display text.

Adding a protocol: one ``Protocol(...)`` entry in PROTOCOLS below.

Sources (DESIGN.md): MobileBERT (arXiv 2004.02984) Table 5: Pixel 4, TFLite, 4 threads,
seq 128, 62 ms vs BERT-base 342 ms. SqueezeBERT (arXiv 2006.11316) Table 2: Pixel 3,
PyTorch Mobile (TorchScript), seq 128, batch 1, BERT-base 1690 ms, SqueezeBERT 390 ms
(4.3x); the paper does not state threads: 4 (the Pixel 3's big cores) is assumed.
DistilBERT (arXiv 1910.01108) Table 3: a batch-1 pass over STS-B dev on CPU, 668 s vs 410 s
(1.63x); threads and length unstated: all cores and seq 128 are assumed.

Beside the papers, the MLPerf Mobile language task (DESIGN.md): MobileBERT int8 with a
question-answering head at seq 384 in TFLite, single stream, scored by the 90th percentile
latency over at least 1024 queries and at least 60 s. It has no BERT-base pair: the score is
the latency itself, and a run shorter than MLPerf's minimums (``--quick``) says it is not a
valid one.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from pocketbert.benchmarks.rows import ProtocolResult, ScoreRow, SpeedupRow
from pocketbert.errors import PocketbertError
from pocketbert.models.tasks import QUESTION_ANSWERING, TEXT_CLASSIFICATION

BASELINE = "bert"
TASK = TEXT_CLASSIFICATION.name  # "classify a text snippet": a 2-label head, not the MLM decoder

def format_files() -> dict[str, tuple[str | None, str | None]]:
    """How each format column is produced: (export format, or None for the eager model;
    the file of the export its plugin says the protocols time)."""
    from pocketbert.formats import FORMATS

    return {"pytorch": (None, None), **{name: (name, fmt.files[fmt.bench_role]) for name, fmt in FORMATS.items()}}


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    model: str  # architecture measured against BASELINE
    format: str  # the paper's format: a format_files() key
    threads: int | None  # None: every core
    seq_len: int
    batch: int
    device: str  # the paper's device
    paper_model_ms: float | None
    paper_baseline_ms: float | None
    paper_speedup: float | None
    source: str
    task: str = TASK
    recipe: str | None = None  # quantize the export with this recipe first (the task's int8 file)
    baseline: str | None = BASELINE  # an architecture; None: no pair, the latency statistic is the score
    baseline_name: str | None = "BERT-base"  # how tables and charts call the baseline
    statistic: str = "median"  # what the protocol scores: "median" or "p90"
    min_queries: int = 0  # timed queries at least (0: --num-runs)
    min_seconds: float = 0.0  # and at least this long (0: --min-secs)

    def to_dict(self) -> dict:
        return asdict(self)

    def formats_for(self, requested: list[str] | None) -> list[str]:
        """The formats to measure: ``requested`` (--formats), else the paper's; a protocol
        with a recipe has one file, its format's, and ignores the others."""
        if self.recipe or not requested:
            return [self.format]
        return requested

    def runs(self, quick: bool) -> tuple[int, float] | None:
        """(queries, seconds) the protocol itself requires, cut to QUICK with ``quick``;
        None when it leaves them to --num-runs and --min-secs."""
        if not self.min_queries:
            return None
        return (min(self.min_queries, QUICK[0]), min(self.min_seconds, QUICK[1])) if quick else (
            self.min_queries, self.min_seconds)


QUICK = (32, 2.0)  # --quick: enough queries for a p90 to exist, not MLPerf's minimums


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("mobilebert-pixel4", "MobileBERT vs BERT-base, TFLite, 4 threads, seq 128, batch 1",
                 "mobilebert", "tflite", 4, 128, 1, "Pixel 4", 62.0, 342.0, 342.0 / 62.0,
                 "MobileBERT, arXiv 2004.02984, Table 5"),
        Protocol("squeezebert-pixel3", "SqueezeBERT vs BERT-base, PyTorch Mobile (TorchScript lite), seq 128, batch 1",
                 "squeezebert", "torchscript", 4, 128, 1, "Pixel 3", 390.0, 1690.0, 4.3,
                 "SqueezeBERT, arXiv 2006.11316, Table 2 (threads unstated; 4 assumed)"),
        Protocol("distilbert-cpu", "DistilBERT vs BERT-base, PyTorch eager on CPU, batch 1 (paper: a whole "
                 "STS-B dev pass, 410 s vs 668 s)", "distilbert", "pytorch", None, 128, 1, "CPU", None, None,
                 668.0 / 410.0, "DistilBERT, arXiv 1910.01108, Table 3 (threads and length unstated)"),
        Protocol("mlperf-mobile-language", "MLPerf Mobile language: MobileBERT int8 (TFLite dynamic-range), "
                 "question answering, seq 384, batch 1, single stream, p90 over >= 1024 queries and >= 60 s",
                 "mobilebert", "tflite", 4, 384, 1, "phone (MLPerf Mobile)", None, None, None,
                 "MLPerf Mobile inference rules, language task (SQuAD v1.1; accuracy >= 93% of fp32 F1)",
                 task=QUESTION_ANSWERING.name, recipe="tflite-dynamic-int8", baseline=None, baseline_name=None,
                 statistic="p90",
                 min_queries=1024, min_seconds=60.0),
    )
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise PocketbertError(f"unknown protocol {name!r} (known: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]


def model_input(work_dir: Path, arch: str, fmt_key: str, seq_len: int, task: str = TASK,
                recipe: str | None = None, quantize=None) -> Path:
    """The file (or checkpoint) a protocol measures for ``arch`` in format ``fmt_key``: created and
    exported under ``work_dir`` on first use (paper-size, random weights: latency does not
    depend on the values), quantized with ``recipe`` when given (by ``quantize(export_dir,
    recipe, out_dir, task)``: quantization is a layer above the benchmarks), reused afterwards.

    Layout: work_dir/ARCH/checkpoint, work_dir/ARCH/FORMAT, work_dir/ARCH/RECIPE (the main job
    writes the same); another task than classification lives in work_dir/ARCH-TASK."""
    formats = format_files()
    if fmt_key not in formats:
        raise PocketbertError(f"unknown format {fmt_key!r} (known: {', '.join(formats)})")
    fmt, file_name = formats[fmt_key]
    if recipe and (fmt is None or quantize is None):
        raise PocketbertError(f"recipe {recipe}: needs an exported format (not {fmt_key}) and a quantize function")
    root = work_dir / (arch if task == TASK else f"{arch}-{task}")
    checkpoint = root / "checkpoint"
    if not (checkpoint / "config.json").is_file():
        from pocketbert.models import create_checkpoint

        create_checkpoint(arch, checkpoint, task=task, force=True)
    if fmt is None:
        return checkpoint
    export_dir = _current_export(root / fmt, seq_len)
    exported = export_dir is None
    if exported:
        from pocketbert.export import ExportOptions, export_model

        export_dir = root / fmt
        export_model(checkpoint, task, fmt, export_dir, ExportOptions(seq_len=seq_len, static=True), force=True)
    if recipe:
        quantized = _current_export(root / recipe, seq_len)
        if quantized is None or exported:  # an int8 file of the float file it replaced is stale
            quantized = root / recipe
            quantize(export_dir, recipe, quantized, task)
        export_dir = quantized
    return export_dir / file_name


def _current_export(export_dir: Path, seq_len: int) -> Path | None:
    """``export_dir`` when it is an export at ``seq_len`` (or of any length), else None."""
    from pocketbert.contracts.artifact import Artifact, is_artifact

    if not is_artifact(export_dir):
        return None
    fixed = Artifact.open(export_dir).fixed_sequence_length
    if fixed not in (None, seq_len):
        warnings.warn(f"{export_dir} takes {fixed} tokens, not {seq_len}: exporting again", stacklevel=2)
        return None
    return export_dir


def run_protocol(protocol: Protocol, work_dir: Path, formats: list[str], thread_counts: list[int | None],
                 measure_one, status=lambda text: None, rounds: int = 1, quantize=None,
                 quick: bool = False) -> ProtocolResult:
    """Measure the protocol's model and its baseline in each format at each thread count, the
    pair in ``rounds`` interleaved rounds (model, baseline, model, ...); a protocol without
    a baseline is scored by its own statistic (``scores``) instead of ``speedups``.

    ``measure_one(path, threads, seq_len, batch, label[, runs=(queries, seconds)]) ->
    Measurement`` does the timing (on this host, or on a phone over adb); ``runs`` is passed
    only when the protocol fixes them. ``status`` hears what is being prepared/measured;
    ``quantize`` makes the int8 file of a protocol with a recipe (``model_input``). Each
    measurement is stamped with the architecture and format it was taken for, so the rows
    find it by fields (rows.measured_for)."""
    from pocketbert.benchmarks.interleave import central, combined, interleaved

    runs = protocol.runs(quick)
    measure = (lambda *job: measure_one(*job, runs=runs)) if runs else measure_one
    archs = (protocol.model,) if protocol.baseline is None else (protocol.model, protocol.baseline)
    out = ProtocolResult(protocol.to_dict())
    for fmt in formats:
        paths = {}
        for arch in archs:
            status(f"{protocol.name}: preparing {arch} for {fmt}")
            paths[arch] = model_input(work_dir, arch, fmt, protocol.seq_len, protocol.task,
                                      protocol.recipe if arch == protocol.model else None, quantize)
        for threads in thread_counts:
            results, noise = {}, []
            status(f"{protocol.name}: {fmt}, {threads} thread(s)")
            jobs = [(path, threads, protocol.seq_len, protocol.batch, _label(protocol, arch, fmt))
                    for arch, path in paths.items()]
            for arch, rounds_of_arch in zip(paths, interleaved(measure, jobs, rounds, status)):
                result = combined(rounds_of_arch)
                result.model, result.protocol_format = arch, fmt
                result.extra.setdefault("protocols", []).append(protocol.name)  # BERT-base serves several
                out.measurements.append(result)
                results[arch] = rounds_of_arch
                noise += [f"{arch}: {reason}" for reason in result.noise]
            if protocol.baseline is None:
                out.scores.append(_score(protocol, fmt, threads, results[protocol.model], quick, noise))
                continue
            model_ms, baseline_ms = (central(combined(results[a])) for a in (protocol.model, protocol.baseline))
            speedup = baseline_ms / model_ms if model_ms else None
            out.speedups.append(SpeedupRow(
                protocol=protocol.name, model=protocol.model, baseline=protocol.baseline, format=fmt,
                threads=threads, model_ms=model_ms, baseline_ms=baseline_ms, speedup=speedup,
                paper_speedup=protocol.paper_speedup,
                ratio_to_paper=speedup / protocol.paper_speedup if speedup and protocol.paper_speedup else None,
                paper_format=fmt == protocol.format, recipe=protocol.recipe, task=protocol.task, noise=noise))
    return out


def _label(protocol: Protocol, arch: str, fmt: str) -> str:
    """Display text only: readers find measurements by fields (rows.measured_for)."""
    recipe = protocol.recipe if arch == protocol.model else None
    return f"{arch} {fmt}" + (f" {recipe}" if recipe else "") + (f" {protocol.task}" if protocol.task != TASK else "")


def _score(protocol: Protocol, fmt: str, threads, rounds_of_model: list, quick: bool, noise: list[str]) -> ScoreRow:
    """The protocol's statistic over the model's rounds (the median of the rounds' values),
    and whether every round met the protocol's minimums (MLPerf: a shorter run is invalid)."""
    from statistics import median

    from pocketbert.benchmarks.interleave import combined

    values = [getattr(m, f"{protocol.statistic}_ms") for m in rounds_of_model]
    queries = min(m.runs for m in rounds_of_model)
    durations = [m.runs * m.mean_ms / 1e3 for m in rounds_of_model if m.mean_ms is not None]
    seconds = min(durations) if len(durations) == len(rounds_of_model) else None  # the shortest round
    short = []
    if queries < protocol.min_queries:
        short.append(f"{queries} queries < {protocol.min_queries}")
    if seconds is None or seconds < protocol.min_seconds:
        short.append(f"{seconds or 0:.1f} s < {protocol.min_seconds:g} s")
    if protocol.statistic == "p90" and any(v is None for v in values):
        short.append("the tool printed no p90")
    return ScoreRow(
        protocol=protocol.name, model=protocol.model, format=fmt, threads=threads, statistic=protocol.statistic,
        score_ms=median(values) if all(v is not None for v in values) else None,
        median_ms=combined(rounds_of_model).median_ms, queries=queries, seconds=seconds,
        valid=not short, not_valid_because=("--quick: " if quick else "") + "; ".join(short) if short else None,
        paper_format=fmt == protocol.format, recipe=protocol.recipe, task=protocol.task, noise=noise)
