"""The benchmark report: JSON (schema in docs/benchmark-report.md), Markdown, PNG charts.

One report holds the host it ran on, the GEMM peak measured in the same run (the roofline's
ceiling), every measurement (benchmarks/results.py) and, per paper protocol, the measured
speedup over BERT-base beside the paper's.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from pocketbert.atomic import atomic_file

SCHEMA_VERSION = 1


def host_info() -> dict:
    from pocketbert.benchmarks.harness import available_cores
    from pocketbert.runtime.artifact import versions

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": available_cores(), "machine": platform.machine(), "system": platform.system(),
            "python": platform.python_version(), "versions": versions()}


def build_report(measurements: list[dict], protocols: list[dict], gemm_peak: dict[str, dict[str, float]]) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": host_info(),
        "gemm_peak_gflops": gemm_peak,
        "measurements": measurements,
        "protocols": protocols,
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
    ("peak_share", "% of GEMM peak"),
]


def _measurement_row(m: dict, gemm_peak: dict[str, dict[str, float]]) -> dict:
    peak = gemm_peak.get(str(m["threads"]), {}).get("peak")
    return {**m, "size_mb": m["file_bytes"] / 1e6 if m.get("file_bytes") else None,
            "gflops": m["flops"] / 1e9 if m.get("flops") else None,
            "peak_share": 100 * m["gflops_per_s"] / peak if peak and m.get("gflops_per_s") else None}


def protocol_rows(protocol: dict) -> list[dict]:
    """One row per (runtime, threads): both models' medians, the speedup, the paper's."""
    return protocol["speedups"]


def to_markdown(report: dict) -> str:
    host = report["host"]
    peaks = "; ".join(f"{t} thread(s): " + ", ".join(f"{engine} {v:.0f}" for engine, v in rates.items())
                      for t, rates in report["gemm_peak_gflops"].items())
    parts = [
        "# pocketbert benchmark report",
        "",
        f"{report['created']} on {host['cpu']} ({host['cores']} cores, {host['machine']}); fp32 GEMM peak "
        f"measured in this run (GFLOP/s; '% of GEMM peak' uses the best engine): {peaks or '-'}.",
    ]
    for protocol in report["protocols"]:
        p = protocol["protocol"]
        paper = (f"paper: {p['model']} {p['paper_model_ms']:g} ms, BERT-base {p['paper_baseline_ms']:g} ms, "
                 if p["paper_model_ms"] else "paper: ")
        parts += [
            "", f"## {p['name']}: {p['description']}", "",
            f"{paper}speedup {p['paper_speedup']:.2f}x on {p['device']} ({p['source']}).", "",
            markdown_table(
                ["runtime", "threads", "model_ms", "baseline_ms", "speedup", "paper_speedup", "ratio_to_paper"],
                protocol_rows(protocol),
                ["runtime", "threads", f"{p['model']} median ms", "bert median ms", "speedup", "paper speedup",
                 "measured / paper"],
            ),
        ]
    columns = [c for c, _ in MEASUREMENT_COLUMNS]
    rows = [_measurement_row(m, report["gemm_peak_gflops"]) for m in report["measurements"]]
    parts += ["", "## Measurements", "", markdown_table(columns, rows, [h for _, h in MEASUREMENT_COLUMNS]), ""]
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
    """Left: median latency per input (grouped by threads). Right, with protocols: measured
    speedup over BERT-base per runtime beside the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = report["protocols"]
    figure, axes = plt.subplots(1, 2 if protocols else 1, figsize=(13 if protocols else 8, 5), squeeze=False)
    latency = axes[0][0]
    measurements = report["measurements"]
    labels = list(dict.fromkeys(m["label"] for m in measurements))
    thread_counts = list(dict.fromkeys(m["threads"] for m in measurements))
    width = 0.8 / max(1, len(thread_counts))
    for k, threads in enumerate(thread_counts):
        values = {m["label"]: m["median_ms"] or m["mean_ms"] for m in measurements if m["threads"] == threads}
        positions = [i + k * width for i in range(len(labels))]
        latency.bar(positions, [values.get(label, 0) for label in labels], width,
                    label=f"{threads or 'default'} thread(s)")
    latency.set_xticks([i + width * (len(thread_counts) - 1) / 2 for i in range(len(labels))])
    latency.set_xticklabels(labels, rotation=40, ha="right", fontsize=7)
    latency.set_ylabel("median latency (ms)")
    latency.set_title("latency per model x runtime")
    latency.legend(fontsize=7)
    if protocols:
        speed = axes[0][1]
        names, measured, paper = [], [], []
        for protocol in protocols:
            for row in protocol["speedups"]:
                names.append(f"{protocol['protocol']['model']}\n{row['runtime']} {row['threads'] or 'all'}t")
                measured.append(row["speedup"] or 0)
                paper.append(row["paper_speedup"])
        positions = range(len(names))
        speed.bar([p - 0.2 for p in positions], measured, 0.4, label="measured here")
        speed.bar([p + 0.2 for p in positions], paper, 0.4, label="paper (phone / CPU)")
        speed.set_xticks(list(positions))
        speed.set_xticklabels(names, fontsize=7)
        speed.set_ylabel("speedup over BERT-base (x)")
        speed.set_title("measured speedup vs the paper's")
        speed.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)
