"""The papers' latency protocols as presets, and the models they measure.

Each protocol fixes what the paper fixed (runtime, threads, sequence length, batch, the
model pair) and carries the paper's figures, so a run here prints the measured latency and
speedup beside them. Phones and this machine differ by a constant-ish factor per runtime;
the *ratio* to BERT-base is what should reproduce.

Sources (DESIGN.md): MobileBERT (arXiv 2004.02984) Table 5: Pixel 4, TFLite, 4 threads,
seq 128, 62 ms vs BERT-base 342 ms. SqueezeBERT (arXiv 2006.11316) Table 2: Pixel 3,
PyTorch Mobile (TorchScript), seq 128, batch 1, BERT-base 1690 ms, SqueezeBERT 390 ms
(4.3x); the paper does not state threads: 4 (the Pixel 3's big cores) is assumed.
DistilBERT (arXiv 1910.01108) Table 3: a batch-1 pass over STS-B dev on CPU, 668 s vs 410 s
(1.63x); threads and length unstated: all cores and seq 128 are assumed.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from pocketbert.errors import PocketbertError

BASELINE = "bert"
TASK = "text-classification"  # "classify a text snippet": a 2-label head, not the MLM decoder

def runtime_files() -> dict[str, tuple[str | None, str | None]]:
    """How each runtime column is produced: (export format, or None for the eager model;
    the file of the export its plugin says the protocols time)."""
    from pocketbert.formats import FORMATS

    return {"pytorch": (None, None), **{name: (name, fmt.files[fmt.bench_role]) for name, fmt in FORMATS.items()}}


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    model: str  # architecture measured against BASELINE
    runtime: str  # the paper's runtime: a runtime_files() key
    threads: int | None  # None: every core
    seq_len: int
    batch: int
    device: str  # the paper's device
    paper_model_ms: float | None
    paper_baseline_ms: float | None
    paper_speedup: float
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


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
    )
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise PocketbertError(f"unknown protocol {name!r} (known: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]


def model_input(work_dir: Path, arch: str, runtime: str, seq_len: int) -> Path:
    """The file (or checkpoint) a protocol measures for ``arch`` in ``runtime``: created and
    exported under ``work_dir`` on first use (paper-size, random weights: fp32 latency does
    not depend on the values), reused afterwards.

    Layout: work_dir/ARCH/checkpoint, work_dir/ARCH/FORMAT (the main job writes the same)."""
    from pocketbert.export import ExportOptions, export_model
    from pocketbert.runtime.artifact import Artifact, is_artifact
    from pocketbert.models import create_checkpoint

    runtimes = runtime_files()
    if runtime not in runtimes:
        raise PocketbertError(f"unknown runtime {runtime!r} (known: {', '.join(runtimes)})")
    checkpoint = work_dir / arch / "checkpoint"
    if not (checkpoint / "config.json").is_file():
        create_checkpoint(arch, checkpoint, task=TASK, force=True)
    fmt, file_name = runtimes[runtime]
    if fmt is None:
        return checkpoint
    export_dir = work_dir / arch / fmt
    if is_artifact(export_dir):
        fixed = Artifact.open(export_dir).fixed_sequence_length
        if fixed not in (None, seq_len):
            warnings.warn(f"{export_dir} takes {fixed} tokens, not {seq_len}: exporting again", stacklevel=2)
        else:
            return export_dir / file_name
    export_model(checkpoint, TASK, fmt, export_dir, ExportOptions(seq_len=seq_len, static=True), force=True)
    return export_dir / file_name


def run_protocol(protocol: Protocol, work_dir: Path, runtimes: list[str], thread_counts: list[int | None],
                 measure_one, status=lambda text: None, rounds: int = 1) -> dict:
    """Measure the protocol's model and BERT-base in each runtime at each thread count, the
    pair in ``rounds`` interleaved rounds (model, BERT-base, model, ...).

    ``measure_one(path, threads, seq_len, batch, label) -> Measurement`` does the timing (on
    this host, or on a phone over adb); ``status`` hears what is being prepared/measured."""
    from pocketbert.benchmarks.interleave import central, combined, interleaved

    measurements, speedups = [], []
    for runtime in runtimes:
        paths = {}
        for arch in (protocol.model, BASELINE):
            status(f"{protocol.name}: preparing {arch} for {runtime}")
            paths[arch] = model_input(work_dir, arch, runtime, protocol.seq_len)
        for threads in thread_counts:
            medians, noise = {}, []
            status(f"{protocol.name}: {runtime}, {threads} thread(s)")
            jobs = [(path, threads, protocol.seq_len, protocol.batch, f"{arch} {runtime}") for arch, path in paths.items()]
            for arch, rounds_of_arch in zip(paths, interleaved(measure_one, jobs, rounds, status)):
                result = combined(rounds_of_arch)
                result.extra.setdefault("protocols", []).append(protocol.name)  # BERT-base serves several
                measurements.append(result)
                medians[arch] = central(result)
                noise += [f"{arch}: {reason}" for reason in result.noise]
            model_ms, baseline_ms = medians[protocol.model], medians[BASELINE]
            speedup = baseline_ms / model_ms if model_ms else None
            speedups.append({
                "runtime": runtime, "threads": threads, "model_ms": model_ms, "baseline_ms": baseline_ms,
                "speedup": speedup, "paper_speedup": protocol.paper_speedup,
                "ratio_to_paper": speedup / protocol.paper_speedup if speedup else None,
                "paper_runtime": runtime == protocol.runtime, "noise": noise,
            })
    return {"protocol": protocol.to_dict(), "speedups": speedups, "measurements": measurements}
