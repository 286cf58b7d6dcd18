"""One latency measurement, whoever made it: the host harness, or benchmark_model on a
phone over adb. The JSON report is a list of these (``to_dict``) plus the run's context;
the schema is documented field by field here and in docs/benchmark-report.md.

Times are milliseconds. Fields a tool does not report stay None (benchmark_model prints
no median or p90; the host harness has no "overall memory footprint").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class Measurement:
    label: str  # what the row is called in tables: "mobilebert tflite", a file name ...
    input: str  # the checkpoint directory or model file measured
    format: str  # pytorch | onnx | ort | torchscript | torchscript-lite | tflite | executorch
    runtime: str  # torch | onnxruntime | litert | benchmark_model
    device: str  # "host" or "adb:SERIAL"
    threads: int | None
    seq_len: int
    batch: int
    architecture: str | None = None  # model_type from config.json
    quantization: str | None = None  # recipe name, None for float
    arithmetic: str | None = None  # "int8" or "float": the GEMM peak the row is held to (contracts/recipe.py)
    file_bytes: int | None = None
    init_ms: float | None = None  # load the file / build the session
    first_inference_ms: float | None = None
    warmup_runs: int = 0
    warmup_avg_ms: float | None = None
    runs: int = 0  # timed runs: at least num_runs and at least min_secs of them
    median_ms: float | None = None
    mean_ms: float | None = None
    p90_ms: float | None = None
    p10_ms: float | None = None  # with p90_ms: the spread the report's whiskers draw
    std_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    peak_rss_mb: float | None = None  # the measuring process's peak resident set
    flops: float | None = None  # analytic, per inference (benchmarks/flops.py)
    gflops_per_s: float | None = None  # flops / median (or mean when there is no median)
    cv: float | None = None  # std / mean of the timed runs
    # bench --lengths: the runs are queries of a real text's lengths (count, p50/p90/max tokens,
    # p50 of what the file was fed after padding, its buckets); median/p90 are then per query
    queries: dict | None = None
    machine: dict | None = None  # what ran beside the timed runs (benchmarks/noise.py machine_load)
    noise: list[str] = field(default_factory=list)  # why this row is not to be trusted; [] = nothing says so
    extra: dict = field(default_factory=dict)  # tool-specific: benchmark_model's memory lines ...
    # a protocol's measurement (benchmarks/protocols.py): the architecture it asked for and its
    # format column, so rows find their measurements by fields (benchmarks/rows.py), not labels
    model: str | None = None
    protocol_format: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Measurement:
        """A measurement read back from a JSON report (keys it does not know are dropped)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def with_flops(self, flops: float | None) -> Measurement:
        """Fill ``flops`` and the achieved rate from the central time."""
        self.flops = flops
        central = self.median_ms if self.median_ms is not None else self.mean_ms
        if flops and central:
            self.gflops_per_s = flops / (central * 1e-3) / 1e9
        return self
