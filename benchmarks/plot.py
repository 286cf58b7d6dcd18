"""The benchmark report's PNG: one job, drawing a report dict (docs/benchmark-report.md).

``panels(report)`` lays the report out as data (no matplotlib): one panel per paper
protocol, one for the measurements no protocol used, one per ``--compare`` comparison.
``figure(report)`` draws them; ``draw(report, path)`` writes the PNG.

A protocol panel has two axes sharing the rows, one row pair per (format, threads):
left, the model's and its baseline's (BERT-base's) median latency (log axis, value written at the bar's
end, whiskers p10-p90, the GEMM-peak floor ``flops / peak GFLOP/s`` as a red tick);
right, the measured speedup over the baseline as a bar, the paper's as a black diamond and
the FLOP ratio (baseline FLOPs / model FLOPs: the speedup if FLOPs were all that
mattered) as a purple tick. Noisy rows are hatched and tagged "noisy". Rows are
benchmarks/rows.py's typed records and find their measurements by fields, never by label.

matplotlib is imported when drawing, not on import, and only its Agg canvas is used (no
pyplot: nothing global changes, nothing stays open).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from pocketbert.benchmarks.report import held_to_peak
from pocketbert.benchmarks.rows import ProtocolResult, baseline_name, measured_for

ROW_INCHES = 0.3  # one bar's height in the figure: room for a two-line tick label per bar pair
HEADER_INCHES = 1.9  # a panel's title, x axis and legend
WIDTH_INCHES = 13.0
DPI = 110
MAX_PIXELS = 60000  # Agg cannot draw 2**16 pixels; a report with thousands of rows gets a lower dpi

MODEL_COLOR, BASELINE_COLOR, PLAIN_COLOR = "#3a76b0", "#9a9a9a", "#3a76b0"
SPEEDUP_COLOR, FLOOR_COLOR, FLOP_COLOR = "#5aa05a", "#d62728", "#8c4fb8"
NOISY_HATCH = "////"


@dataclass
class Bar:
    """One latency bar: a measurement's central time and what is drawn around it."""

    label: str
    median_ms: float | None  # the median (the mean where a tool prints no median)
    p10_ms: float | None = None
    p90_ms: float | None = None
    flops: float | None = None
    floor_ms: float | None = None  # flops / the GEMM peak at these threads: no faster than this
    noise: list[str] = field(default_factory=list)
    note: str | None = None  # written after the value: a scored protocol's score and validity

    @property
    def noisy(self) -> bool:
        return bool(self.noise)


@dataclass
class Group:
    """One protocol row: (format, threads), the model beside the protocol's baseline."""

    label: str
    model: Bar
    baseline: Bar
    speedup: float | None
    paper_speedup: float | None
    flop_ratio: float | None  # baseline flops / model flops: the ideal speedup
    noise: list[str] = field(default_factory=list)

    @property
    def noisy(self) -> bool:
        return bool(self.noise) or self.model.noisy or self.baseline.noisy


@dataclass
class Ratio:
    """One comparison row: latency / the baseline's, per round."""

    label: str
    ratio: float | None
    ratio_min: float | None
    ratio_max: float | None
    median_ms: float | None
    baseline: bool = False
    noise: list[str] = field(default_factory=list)

    @property
    def noisy(self) -> bool:
        return bool(self.noise)


@dataclass
class Panel:
    kind: str  # "protocol" | "measurements" | "comparison"
    title: str
    groups: list[Group] = field(default_factory=list)  # kind "protocol"
    bars: list[Bar] = field(default_factory=list)  # kind "measurements"
    ratios: list[Ratio] = field(default_factory=list)  # kind "comparison"
    model: str | None = None  # kind "protocol": the architecture against the baseline
    baseline: str | None = None  # kind "protocol": the baseline's display name (rows.baseline_name)

    @property
    def rows(self) -> int:
        """Bar rows drawn (sizes the panel)."""
        if self.kind == "protocol":
            return math.ceil(2.5 * len(self.groups))  # a bar pair and a gap per group
        return len(self.bars) if self.kind == "measurements" else len(self.ratios)

    @property
    def noisy(self) -> bool:
        return any(row.noisy for row in (*self.groups, *self.bars, *self.ratios))


# ---------------------------------------------------------------- the layout (pure data)

def threads_text(threads) -> str:
    if threads is None:
        return "default threads"
    return f"{threads} thread" + ("" if threads == 1 else "s")


def central(m: dict | None) -> float | None:
    if not m:
        return None
    return m.get("median_ms") if m.get("median_ms") is not None else m.get("mean_ms")


def _positive(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value > 0 else None


def gemm_floor_ms(flops, peak_gflops) -> float | None:
    """The fastest ``flops`` can run at a GEMM peak of ``peak_gflops``, in ms:
    ``flops / (peak GFLOP/s * 1e9) * 1e3``; None without FLOPs or without a peak for them."""
    peak, flops = _positive(peak_gflops), _positive(flops)
    return flops / peak / 1e6 if peak and flops else None


def flop_ratio(baseline_flops, model_flops) -> float | None:
    """The baseline's FLOPs / the model's: the speedup if latency were FLOPs alone."""
    baseline_flops, model_flops = _positive(baseline_flops), _positive(model_flops)
    return baseline_flops / model_flops if baseline_flops and model_flops else None


def bar_of(label: str, m: dict | None, report: dict, median_ms=None, noise=None) -> Bar:
    m = m or {}
    flops = _positive(m.get("flops"))
    return Bar(label=label, median_ms=_positive(median_ms if median_ms is not None else central(m)),
               p10_ms=_positive(m.get("p10_ms")), p90_ms=_positive(m.get("p90_ms")), flops=flops,
               floor_ms=gemm_floor_ms(flops, held_to_peak(m, report)),
               noise=list(noise if noise is not None else m.get("noise") or []))


def _in_protocol(m: dict) -> list[str]:
    return list((m.get("extra") or {}).get("protocols") or [])


def _find(measurements: list[dict], protocol: str, arch: str, fmt: str, threads) -> dict | None:
    """The measurement behind one side of a row: ``arch`` timed in ``fmt`` at ``threads`` for
    ``protocol``, found by its fields (rows.measured_for), never by its label."""
    return next((m for m in measurements if measured_for(m, protocol, arch, fmt, threads)), None)


def _scored_panel(result: ProtocolResult, measurements: list[dict], report: dict) -> Panel:
    """A protocol with no baseline pair (MLPerf's): its model's latency, the score noted."""
    p = result.protocol
    name, model = p.get("name") or "protocol", p.get("model") or "model"
    bars, devices = [], []
    for row in result.scores:
        m = _find(measurements, name, row.model or model, row.format, row.threads)
        devices += [m["device"]] if m and m.get("device") else []
        score = _positive(row.score_ms)
        note = f"{row.statistic or 'score'} {ms_text(score)}" if score else "no score"
        if row.valid is False:
            note += " · not a valid run (under the protocol's minimums)"
        bars.append(bar_of(f"{model} {row.format}, {threads_text(row.threads)}", m, report, row.median_ms))
        bars[-1].note = note
    if not bars:  # no score rows: whatever the protocol measured
        bars = [bar_of(_short(f"{m.get('label')} · {threads_text(m.get('threads'))}"), m, report)
                for m in measurements if name in _in_protocol(m)]
        devices = [m.get("device") for m in measurements if name in _in_protocol(m) and m.get("device")]
    where = ", ".join(dict.fromkeys(devices)) or "host"
    title = (f"{name}: {model}, seq {p.get('seq_len', '?')}, batch {p.get('batch', '?')}, measured on {where}; "
             f"scored by its {p.get('statistic') or 'median'} latency ({p.get('source') or 'no source'})")
    return Panel("measurements", title, bars=bars, model=model)


def _protocol_panel(data: dict, measurements: list[dict], report: dict) -> Panel:
    result = ProtocolResult.from_dict(data)
    p = result.protocol
    name, model = p.get("name") or "protocol", p.get("model") or "model"
    if not result.speedups and (result.scores or result.baseline is None):
        return _scored_panel(result, measurements, report)
    baseline, shown = result.baseline, baseline_name(p)
    groups, devices, threads_seen = [], [], []
    for row in result.speedups:
        found = {side: _find(measurements, name, arch, row.format, row.threads)
                 for side, arch in (("model", row.model or model), ("baseline", row.baseline or baseline))}
        devices += [m.get("device") for m in found.values() if m and m.get("device")]
        threads_seen.append(row.threads)
        label = f"{row.format}, {threads_text(row.threads)}" + ("\n(the paper's format)" if row.paper_format else "")
        groups.append(Group(
            label=label,
            model=bar_of(model, found["model"], report, row.model_ms),
            baseline=bar_of(shown, found["baseline"], report, row.baseline_ms),
            speedup=_positive(row.speedup), paper_speedup=_positive(row.paper_speedup),
            flop_ratio=flop_ratio((found["baseline"] or {}).get("flops"), (found["model"] or {}).get("flops")),
            noise=list(row.noise or []),
        ))
    paper = p.get("paper_speedup")
    paper_text = (f"paper: {paper:.2f}x on {p.get('device') or '?'} ({p.get('format') or '?'}, "
                  f"{threads_text(p.get('threads')) if p.get('threads') else 'all cores'})"
                  if isinstance(paper, (int, float)) else "paper: -")
    measured = (f"measured on {', '.join(dict.fromkeys(devices)) or 'host'} at "
                f"{', '.join(dict.fromkeys(threads_text(t) for t in threads_seen))}" if threads_seen else "nothing measured")
    title = (f"{name}: {model} vs {shown}, seq {p.get('seq_len', '?')}, batch {p.get('batch', '?')}; "
             f"{measured}; {paper_text}")
    return Panel("protocol", title, groups=groups, model=model, baseline=shown)


def _short(label: str, width: int = 60) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1):]


def panels(report: dict) -> list[Panel]:
    """The figure's panels, in order: each protocol, then the measurements no protocol used
    (plain inputs and --compare's), then each comparison. Empty parts give no panel."""
    measurements = [m for m in report.get("measurements") or [] if isinstance(m, dict)]
    out = [_protocol_panel(result, measurements, report) for result in report.get("protocols") or []]
    plain = [m for m in measurements if not _in_protocol(m)]
    if plain:
        devices = ", ".join(dict.fromkeys(str(m.get("device") or "host") for m in plain))
        seqs = ", ".join(dict.fromkeys(str(m.get("seq_len")) for m in plain if m.get("seq_len")))
        bars = [bar_of(_short(f"{m.get('label') or m.get('input') or '?'} · {threads_text(m.get('threads'))}"), m,
                       report) for m in plain]
        out.append(Panel("measurements", f"Measurements outside the protocols: median latency on {devices}"
                         + (f", seq {seqs}" if seqs else ""), bars=bars))
    for comparison in report.get("comparisons") or []:
        baseline = comparison.get("baseline")
        ratios = [Ratio(label=_short(str(row.get("label"))), ratio=_positive(row.get("ratio")),
                        ratio_min=_positive(row.get("ratio_min")), ratio_max=_positive(row.get("ratio_max")),
                        median_ms=_positive(row.get("median_ms")), baseline=row.get("label") == baseline,
                        noise=list(row.get("noise") or [])) for row in comparison.get("rows") or []]
        out.append(Panel("comparison", f"Comparison: {comparison.get('rounds', '?')} interleaved rounds, "
                         f"{threads_text(comparison.get('threads'))}, each in a fresh process; "
                         f"latency / {baseline}'s, round by round", ratios=ratios))
    return out


def suptitle(report: dict) -> str:
    host = report.get("host") or {}
    isa = ", ".join(host.get("isa") or []) or "no vector extensions listed"
    cores = f", {host['cores']} cores" if host.get("cores") else ""
    when = f" — {report['created']}" if report.get("created") else ""
    return f"pocketbert bench on {host.get('cpu') or 'an unknown CPU'}{cores} ({isa}){when}"


# ---------------------------------------------------------------- drawing

def ms_text(value: float) -> str:
    return f"{value:.0f} ms" if value >= 100 else f"{value:.3g} ms"


def _log_limits(values: list[float | None], share: float = 0.33) -> tuple[float, float]:
    """A log axis from below the smallest value to past the largest, the right ``share`` of
    it left for the values written after the bars."""
    known = [v for v in values if v]
    if not known:
        return 1.0, 10.0
    low, high = math.log10(min(known) / 1.6), math.log10(max(known))
    span = max(high - low, 0.5)
    return 10 ** low, 10 ** (high + share / (1 - share) * span)


def _text_share(texts: list[str], axes_inches: float) -> float:
    """The share of an axes ``texts`` need at 7.5 pt (about 0.06 inch a character)."""
    longest = max((len(text) for text in texts), default=0)
    return min(0.65, max(0.25, (0.3 + 0.062 * longest) / axes_inches))


def _bar_text(bar: Bar) -> str:
    parts = [ms_text(bar.median_ms)]
    if bar.floor_ms:
        parts.append(f"floor {ms_text(bar.floor_ms)}")
    if bar.note:
        parts.append(bar.note)
    if bar.noisy:
        parts.append("noisy")
    return " · ".join(parts)


def _latency_bars(ax, bars: list[Bar], ys: list[float], colors: list[str], height: float, inches: float) -> None:
    values = [v for b in bars for v in (b.median_ms, b.p10_ms, b.p90_ms, b.floor_ms)]
    low, high = _log_limits(values, _text_share([_bar_text(b) for b in bars if b.median_ms], inches))
    from matplotlib.ticker import LogFormatter

    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))  # "20", "300": not 2x10^1
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    for bar, y, color in zip(bars, ys, colors):
        if bar.median_ms is None:
            ax.text(low * 1.15, y, "no median measured", va="center", fontsize=7.5, style="italic", color="#555")
            continue
        ax.barh(y, bar.median_ms - low, left=low, height=height, color=color,
                hatch=NOISY_HATCH if bar.noisy else None, edgecolor="black" if bar.noisy else color, linewidth=0.6)
        end = bar.median_ms
        if bar.p10_ms is not None and bar.p90_ms is not None:
            ax.errorbar(bar.median_ms, y, xerr=[[max(0.0, bar.median_ms - bar.p10_ms)],
                                                [max(0.0, bar.p90_ms - bar.median_ms)]],
                        fmt="none", ecolor="black", elinewidth=1, capsize=3)
            end = max(end, bar.p90_ms)
        if bar.floor_ms is not None:
            ax.vlines(bar.floor_ms, y - height / 2, y + height / 2, colors=FLOOR_COLOR, linewidth=2.5, zorder=3)
            end = max(end, bar.floor_ms)  # a floor past the bar (a file held to the wrong peak?) stays clear of the text
        ax.text(end * 1.08, y, _bar_text(bar), va="center", fontsize=7.5,
                fontweight="bold" if bar.noisy else "normal")
    ax.grid(axis="x", which="major", alpha=0.3)
    ax.set_axisbelow(True)


def _legend(subfigure, handles: list) -> None:
    subfigure.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=7.5,
                     frameon=False)


def _common_handles(noisy: bool) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color="black", marker="|", markersize=8, linestyle="-", linewidth=1,
                      label="whiskers: p10-p90 of the timed runs"),
               Line2D([], [], color=FLOOR_COLOR, marker="|", markersize=12, markeredgewidth=2.5, linestyle="none",
                      label="GEMM-peak floor: FLOPs / this run's GEMM peak at these threads (int8 files: int8 peak)")]
    if noisy:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch=NOISY_HATCH,
                             label="noisy: machine busy or runs spread (loose numbers)"))
    return handles


def _draw_protocol(subfigure, panel: Panel) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    latency, speed = subfigure.subplots(1, 2, sharey=True, width_ratios=[3, 1.5])
    ys, centers, bars, colors = [], [], [], []
    for g, group in enumerate(panel.groups):
        top = 2.5 * g
        ys += [top, top + 1]
        centers.append(top + 0.5)
        bars += [group.model, group.baseline]
        colors += [MODEL_COLOR, BASELINE_COLOR]
    _latency_bars(latency, bars, ys, colors, height=0.9, inches=0.62 * WIDTH_INCHES)
    latency.set_yticks(centers, [group.label for group in panel.groups], fontsize=8)
    latency.set_xlabel("median latency, ms (log scale; lower is faster)", fontsize=8)
    latency.tick_params(axis="x", labelsize=7.5)

    marks = [v for g in panel.groups for v in (g.speedup, g.paper_speedup, g.flop_ratio) if v]
    right = max(marks, default=1.0)
    speed.set_xlim(0, max(right, 1.0) * 1.9)
    speed.axvline(1.0, color="black", linestyle=":", linewidth=1)
    for group, y in zip(panel.groups, centers):
        if group.speedup is not None:
            speed.barh(y, group.speedup, height=1.5, color=SPEEDUP_COLOR, hatch=NOISY_HATCH if group.noisy else None,
                       edgecolor="black" if group.noisy else SPEEDUP_COLOR, linewidth=0.6)
        if group.paper_speedup is not None:
            speed.plot(group.paper_speedup, y, marker="D", color="black", markersize=6, linestyle="none", zorder=3)
        if group.flop_ratio is not None:
            speed.plot(group.flop_ratio, y, marker="|", color=FLOP_COLOR, markersize=20, markeredgewidth=2.5,
                       linestyle="none", zorder=3)
        first = f"{group.speedup:.2f}x measured" if group.speedup is not None else "no speedup measured"
        if group.noisy:
            first += " · noisy"
        second = " · ".join(text for text in (
            f"paper {group.paper_speedup:.2f}x" if group.paper_speedup is not None else None,
            f"FLOPs {group.flop_ratio:.2f}x" if group.flop_ratio is not None else None) if text)
        end = max((v for v in (group.speedup, group.paper_speedup, group.flop_ratio) if v), default=0.0)
        speed.text(end + right * 0.1, y, first + ("\n" + second if second else ""), va="center", fontsize=7.5,
                   fontweight="bold" if group.noisy else "normal")
    speed.tick_params(axis="y", labelleft=False, left=False)
    speed.tick_params(axis="x", labelsize=7.5)
    speed.set_xlabel(f"speedup over {panel.baseline} (x; higher is faster)", fontsize=8)
    speed.grid(axis="x", alpha=0.3)
    speed.set_axisbelow(True)
    latency.set_ylim(max(ys, default=1) + 0.8, min(ys, default=0) - 0.8)  # first row on top
    latency.set_title("latency", fontsize=8.5, loc="left")
    speed.set_title("speedup", fontsize=8.5, loc="left")
    handles = [Patch(color=MODEL_COLOR, label=panel.model), Patch(color=BASELINE_COLOR, label=panel.baseline),
               *_common_handles(panel.noisy),
               Patch(color=SPEEDUP_COLOR, label=f"measured speedup ({panel.baseline} ms / model ms)"),
               Line2D([], [], color="black", marker="D", markersize=6, linestyle="none", label="paper's speedup"),
               Line2D([], [], color=FLOP_COLOR, marker="|", markersize=12, markeredgewidth=2.5, linestyle="none",
                      label="FLOP ratio: the speedup if only FLOPs mattered")]
    _legend(subfigure, handles)


def _draw_measurements(subfigure, panel: Panel) -> None:
    from matplotlib.patches import Patch

    ax = subfigure.subplots()
    ys = list(range(len(panel.bars)))
    _latency_bars(ax, panel.bars, ys, [PLAIN_COLOR] * len(ys), height=0.75, inches=0.7 * WIDTH_INCHES)
    ax.set_yticks(ys, [bar.label for bar in panel.bars], fontsize=8)
    ax.set_ylim(len(ys) - 0.4, -0.6)
    ax.set_xlabel("median latency, ms (log scale; lower is faster)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7.5)
    _legend(subfigure, [Patch(color=PLAIN_COLOR, label="median latency"), *_common_handles(panel.noisy)])


def _draw_comparison(subfigure, panel: Panel) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax = subfigure.subplots()
    ys = list(range(len(panel.ratios)))
    right = max((v for r in panel.ratios for v in (r.ratio, r.ratio_max) if v), default=1.0)
    ax.set_xlim(0, max(right, 1.0) * 1.45)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    for row, y in zip(panel.ratios, ys):
        if row.ratio is None:
            ax.text(right * 0.02, y, "no ratio", va="center", fontsize=7.5, style="italic", color="#555")
            continue
        color = BASELINE_COLOR if row.baseline else MODEL_COLOR
        ax.barh(y, row.ratio, height=0.7, color=color, hatch=NOISY_HATCH if row.noisy else None,
                edgecolor="black" if row.noisy else color, linewidth=0.6)
        end = row.ratio
        text = f"{row.ratio:.2f}x"
        if row.ratio_min is not None and row.ratio_max is not None:
            ax.errorbar(row.ratio, y, xerr=[[max(0.0, row.ratio - row.ratio_min)], [max(0.0, row.ratio_max - row.ratio)]],
                        fmt="none", ecolor="black", elinewidth=1, capsize=3)
            end = max(end, row.ratio_max)
            text += f" ({row.ratio_min:.2f}-{row.ratio_max:.2f})"
        if row.median_ms is not None:
            text += f" · {ms_text(row.median_ms)}"
        if row.noisy:
            text += " · noisy"
        ax.text(end + right * 0.02, y, text, va="center", fontsize=7.5, fontweight="bold" if row.noisy else "normal")
    ax.set_yticks(ys, [r.label + (" (baseline)" if r.baseline else "") for r in panel.ratios], fontsize=8)
    ax.set_ylim(len(ys) - 0.4, -0.6)
    ax.set_xlabel("latency ratio to the baseline (median over rounds; lower is faster)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    handles = [Patch(color=MODEL_COLOR, label="ratio (median of per-round ratios)"),
               Line2D([], [], color="black", marker="|", markersize=8, linewidth=1, label="whiskers: min-max over rounds"),
               Line2D([], [], color="black", linestyle="--", linewidth=1, label="1.0: as fast as the baseline")]
    if panel.noisy:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch=NOISY_HATCH, label="noisy (loose numbers)"))
    _legend(subfigure, handles)


DRAW = {"protocol": _draw_protocol, "measurements": _draw_measurements, "comparison": _draw_comparison}


def panel_inches(panel: Panel) -> float:
    return HEADER_INCHES + ROW_INCHES * max(1, panel.rows)


def figure(report: dict):
    """The report as a matplotlib Figure (an Agg canvas attached); ``figure.panels`` are the
    panels drawn, ``figure.subfigs`` one subfigure per panel, in that order."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    laid_out = panels(report)
    heights = [panel_inches(panel) for panel in laid_out]
    fig = Figure(figsize=(WIDTH_INCHES, 0.7 + (sum(heights) if heights else 2.0)), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(suptitle(report), fontsize=11, fontweight="bold")
    fig.panels = laid_out
    if not laid_out:
        fig.text(0.5, 0.45, "nothing to plot: the report has no measurements, protocols or comparisons",
                 ha="center", va="center", fontsize=11)
        return fig
    subfigures = fig.subfigures(len(laid_out), 1, height_ratios=heights, squeeze=False)[:, 0]
    for subfigure, panel in zip(subfigures, laid_out):
        subfigure.suptitle("\n".join(textwrap.wrap(panel.title, 150)), fontsize=9.5, x=0.01, ha="left")
        if panel.rows:
            DRAW[panel.kind](subfigure, panel)
        else:
            subfigure.text(0.5, 0.5, "nothing measured", ha="center", va="center", fontsize=9, style="italic")
    return fig


def draw(report: dict, path: Path | str) -> None:
    """Write the report's PNG to ``path`` (whatever its suffix: the format is PNG)."""
    fig = figure(report)
    dpi = min(DPI, int(MAX_PIXELS / fig.get_figheight()))
    fig.savefig(path, dpi=max(dpi, 10), format="png")
