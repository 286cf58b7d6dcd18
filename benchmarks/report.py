"""The benchmark report: JSON (schema in docs/benchmark-report.md), Markdown, PNG charts.

One report holds the host it ran on, the GEMM peak measured in the same run (the roofline's
ceiling), every measurement (benchmarks/results.py) and, per paper protocol, the measured
speedup over its baseline (BERT-base) beside the paper's. Protocol sections are built
from benchmarks/rows.py's typed rows; a report written before the "runtime" column became
"format" reads the same.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from pocketbert.atomic import atomic_file
from pocketbert.benchmarks.rows import ProtocolResult, baseline_name

SCHEMA_VERSION = 1


def cpu_model() -> str:
    """The CPU's name as the kernel gives it ("AMD EPYC 9B14"); the platform's guess elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def host_info() -> dict:
    from pocketbert.benchmarks.harness import available_cores
    from pocketbert.contracts.artifact import versions

    return {"cpu": cpu_model(), "cores": available_cores(), "machine": platform.machine(), "isa": cpu_isa(),
            "system": platform.system(), "python": platform.python_version(), "versions": versions()}


# what the runtimes' GEMM kernels can use, by the flag the kernel reports in /proc/cpuinfo
ISA_FLAGS = (("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512"), ("avx512_vnni", "AVX-512 VNNI"),
             ("avx_vnni", "AVX-VNNI"), ("avx512_bf16", "AVX-512 BF16"), ("amx_int8", "AMX-INT8"),
             ("asimddp", "ARM dot product"), ("i8mm", "ARM I8MM"), ("sve", "SVE"), ("sme", "SME"))


def cpu_isa() -> list[str]:
    """The vector extensions that decide int8 and fp32 GEMM speed (AVX2, AVX-512, VNNI, AMX;
    ARM's dot product and I8MM), as the kernel lists them."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[1].split())
    return [name for flag, name in ISA_FLAGS if flag in flags]


def build_report(measurements: list[dict], protocols: list[dict], gemm_peak: dict[str, dict[str, float]],
                 comparisons: list[dict] | None = None, int8_gemm_peak: dict[str, dict[str, float]] | None = None) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": host_info(),
        "gemm_peak_gflops": gemm_peak,
        "int8_gemm_peak_gops": int8_gemm_peak or {},
        "measurements": measurements,
        "protocols": protocols,
        "comparisons": comparisons or [],
    }


def markdown_table(columns: list[str], rows: list[dict], headers: list[str] | None = None) -> str:
    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers or columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


MEASUREMENT_COLUMNS = [
    ("label", "input"), ("threads", "threads"), ("seq_len", "seq"), ("size_mb", "MB"), ("init_ms", "init ms"),
    ("first_inference_ms", "first ms"), ("warmup_avg_ms", "warmup ms"), ("median_ms", "median ms"),
    ("mean_ms", "mean ms"), ("p90_ms", "p90 ms"), ("std_ms", "std ms"), ("min_ms", "min ms"), ("max_ms", "max ms"),
    ("runs", "runs"), ("peak_rss_mb", "peak RSS MB"), ("gflops", "GFLOP"), ("gflops_per_s", "GFLOP/s"),
    ("arithmetic", "GEMM"), ("peak_share", "% of its GEMM peak"), ("flag", "noisy"),
]


def flagged(row: dict) -> dict:
    """A table row with its ``flag`` column: "noisy" when it has noise reasons."""
    return {**row, "flag": "noisy" if row.get("noise") else None}


def noisy(measurements: list[dict]) -> list[dict]:
    return [m for m in measurements if m.get("noise")]


def noise_warning(measurements: list[dict]) -> str | None:
    """One line for the terminal when any row was measured on a busy machine."""
    rows = noisy(measurements)
    if not rows:
        return None
    return (f"{len(rows)} of {len(measurements)} measurements were noisy ({rows[0]['label']}: "
            f"{'; '.join(rows[0]['noise'])}): their numbers and ratios are loose")


def held_to_peak(m: dict, report: dict) -> float | None:
    """The GEMM peak a measurement is held to, in G(FL)OP/s: the int8 kernels' for a file
    whose matmuls are int8 (``arithmetic``), the fp32 kernels' otherwise; None when this run
    measured no such peak at its thread count (a phone, a default thread count)."""
    peaks = report.get("int8_gemm_peak_gops" if m.get("arithmetic") == "int8" else "gemm_peak_gflops") or {}
    return peaks.get(str(m.get("threads")), {}).get("peak")


def _measurement_row(m: dict, report: dict) -> dict:
    peak = held_to_peak(m, report)
    return {**flagged(m),
            "size_mb": m["file_bytes"] / 1e6 if m.get("file_bytes") else None,
            "gflops": m["flops"] / 1e9 if m.get("flops") else None,
            "peak_share": 100 * m["gflops_per_s"] / peak if peak and m.get("gflops_per_s") else None}


def protocol_rows(protocol: dict) -> list[dict]:
    """One row per (format, threads): both models' medians, the speedup, the paper's."""
    return [flagged(row.to_dict()) for row in ProtocolResult.from_dict(protocol).speedups]


def _peaks_text(peaks: dict[str, dict[str, float]]) -> str:
    return "; ".join(f"{t} thread(s): " + ", ".join(f"{engine} {v:.0f}" for engine, v in rates.items())
                     for t, rates in peaks.items())


def _score_section(protocol: dict) -> list[str]:
    """A protocol scored by its own latency statistic (MLPerf's p90), with whether the run
    met its minimums."""
    result = ProtocolResult.from_dict(protocol)
    p = result.protocol
    rows = [{**flagged(row.to_dict()), "valid": "yes" if row.valid else f"no: {row.not_valid_because}"}
            for row in result.scores]
    return [
        "", f"## {p['name']}: {p['description']}", "",
        f"Scored by the {p['statistic']} latency over >= {p['min_queries']} queries and >= {p['min_seconds']:g} s "
        f"({p['source']}); a run under those minimums is not a valid score.", "",
        markdown_table(["format", "threads", "score_ms", "median_ms", "queries", "seconds", "valid", "flag"], rows,
                       ["format", "threads", f"{p['statistic']} ms", "median ms", "queries", "seconds",
                        "valid MLPerf run", "noisy"]),
    ]


def to_markdown(report: dict) -> str:
    host = report["host"]
    peaks = _peaks_text(report["gemm_peak_gflops"])
    int8_peaks = _peaks_text(report.get("int8_gemm_peak_gops") or {})
    parts = [
        "# pocketbert benchmark report",
        "",
        f"{report['created']} on {host['cpu']} ({host['cores']} cores, {host['machine']}, "
        f"{', '.join(host.get('isa') or []) or 'no vector extensions listed'}); fp32 GEMM peak "
        f"measured in this run (GFLOP/s; '% of its GEMM peak' uses the best engine): {peaks or '-'}"
        + (f"; int8 GEMM peak (GOP/s, the int8 files' ceiling): {int8_peaks}." if int8_peaks else "."),
    ]
    for protocol in report["protocols"]:
        result = ProtocolResult.from_dict(protocol)
        p, shown = result.protocol, baseline_name(result.protocol)
        if result.baseline is None:
            parts += _score_section(protocol)
            continue
        paper = (f"paper: {p['model']} {p['paper_model_ms']:g} ms, {shown} {p['paper_baseline_ms']:g} ms, "
                 if p.get("paper_model_ms") else "paper: ")
        paper_speedup = f"{p['paper_speedup']:.2f}x" if p.get("paper_speedup") else "-"
        parts += [
            "", f"## {p['name']}: {p['description']}", "",
            f"{paper}speedup {paper_speedup} on {p['device']} ({p['source']}).", "",
            markdown_table(
                ["format", "threads", "model_ms", "baseline_ms", "speedup", "paper_speedup", "ratio_to_paper", "flag"],
                protocol_rows(protocol),
                ["format", "threads", f"{p['model']} median ms", f"{result.baseline} median ms", "speedup",
                 "paper speedup",
                 "measured / paper", "noisy"],
            ),
        ]
    for comparison in report.get("comparisons", []):
        parts += [
            "", f"## Comparison: {comparison['rounds']} interleaved rounds, {comparison['threads'] or 'default'} "
            f"thread(s), each in a fresh process; ratio = latency / {comparison['baseline']}'s, round by round", "",
            markdown_table(["label", "median_ms", "ratio", "ratio_min", "ratio_max", "flag"],
                           [flagged(row) for row in comparison["rows"]],
                           ["input", "median ms (of round medians)", "ratio (median)", "min", "max", "noisy"]),
        ]
    columns = [c for c, _ in MEASUREMENT_COLUMNS]
    rows = [_measurement_row(m, report) for m in report["measurements"]]
    parts += ["", "## Measurements", "", markdown_table(columns, rows, [h for _, h in MEASUREMENT_COLUMNS])]
    noisy_rows = noisy(report["measurements"])
    if noisy_rows:
        parts += ["", "Noisy rows (the machine was busy or the runs spread; treat them as loose):", ""]
        parts += [f"- {m['label']}, {m['threads'] or 'default'} thread(s): {'; '.join(m['noise'])}" for m in noisy_rows]
    parts.append("")
    return "\n".join(parts)


def write_reports(report: dict, json_path=None, markdown_path=None, plot_path=None) -> list[Path]:
    written = []
    if json_path:
        with atomic_file(json_path) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=2) + "\n")
        written.append(Path(json_path))
    if markdown_path:
        with atomic_file(markdown_path) as tmp:
            Path(tmp).write_text(to_markdown(report))
        written.append(Path(markdown_path))
    if plot_path:
        with atomic_file(plot_path) as tmp:
            plot(report, Path(tmp))
        written.append(Path(plot_path))
    return written


def plot(report: dict, path: Path) -> None:
    """The PNG: a panel per protocol, one for the other measurements, one per comparison
    (benchmarks/plot.py draws it)."""
    from pocketbert.benchmarks.plot import draw

    draw(report, path)
