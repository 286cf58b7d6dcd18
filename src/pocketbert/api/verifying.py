"""Is a file right, and where does it run: ``parity`` against PyTorch, ``inspect`` per accelerator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pocketbert.api.checks import checked, fraction, non_negative, positive
from pocketbert.api.result import Result


@dataclass(frozen=True)
class ParityReport(Result):
    """``report``: the JSON of ``parity --json``; ``passed``: every file within the thresholds."""

    report: dict

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])

    def lines(self) -> list[str]:
        return format_report(self.report).split("\n")

    def records(self) -> list[dict]:
        return [{"file": entry["file"], "task": entry["task"], "passed": entry["passed"],
                 "failures": list(entry["failures"]), **_worst_figures(entry)} for entry in self.report["artifacts"]]


def _worst_figures(entry: dict) -> dict:
    outputs = list(dict.fromkeys([*(entry["random"] or {}), *(entry["sentences"] or {})]))
    found = {}
    for output in outputs:
        max_abs, mean_abs, cosine = _worst(entry, output)
        found.update({f"{output}_max_abs": max_abs, f"{output}_mean_abs": mean_abs, f"{output}_cosine": cosine})
    return found


def parity(model: str | Path, artifacts: Sequence[str | Path], *, task: str | None = None,
           eval_data: str | Path | None = None, max_abs: float | None = None, min_top1: float | None = None,
           max_metric_drop: float | None = None, min_cosine: float | None = None, min_agreement: float | None = None,
           min_nn: float | None = None, seq_len: int | None = None) -> ParityReport:
    """Every artifact (an export directory, a file inside one, or a file pocketbert did not
    export) against ``model``, the checkpoint it came from: per output max/mean abs diff,
    cosine and top-1 on random ids and real sentences, the task metric with ``eval_data``.
    ``passed`` is what ``pocketbert parity`` exits 0 on."""
    from pocketbert.quality.parity import parity as run_parity

    report = run_parity(
        model, [str(a) for a in artifacts], eval_data=eval_data, max_abs=checked("max_abs", max_abs, non_negative),
        min_top1=checked("min_top1", min_top1, fraction), seq_len=positive("seq_len", seq_len),
        max_metric_drop=checked("max_metric_drop", max_metric_drop, non_negative),
        min_cosine=checked("min_cosine", min_cosine, fraction), min_agreement=checked("min_agreement", min_agreement, fraction),
        min_nn=checked("min_nn", min_nn, fraction), task=task,
    )
    return ParityReport(report)


def _worst(entry: dict, output: str):
    """Max abs, mean abs (the worse check's) and cosine (the lower) over random and sentences."""
    found = [checks[output] for checks in (entry["random"], entry["sentences"]) if checks and output in checks]
    if not found:
        return None, None, None
    return (max(f["max_abs_diff"] for f in found), max(f["mean_abs_diff"] for f in found),
            min(f["cosine"] for f in found))


def _number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_report(report: dict) -> str:
    """The report as a table, the failures under it and a one-line verdict."""
    header = ["file", "output", "max abs", "mean abs", "cosine", "top-1 random", "top-1 sentences", "metric",
              "delta", "result"]
    rows = []
    for entry in report["artifacts"]:
        outputs = list(dict.fromkeys([*(entry["random"] or {}), *(entry["sentences"] or {})])) or ["-"]
        metrics = list((entry["eval"] or {}).items())
        for index in range(max(len(outputs), len(metrics))):
            output = outputs[index] if index < len(outputs) else ""
            cells = ["", "", "", "", ""]
            if output:
                top1 = [((entry[check] or {}).get(output) or {}).get("top1_agreement") for check in ("random", "sentences")]
                max_abs, mean_abs, cosine = _worst(entry, output)
                cells = [_number(max_abs, ".3g"), _number(mean_abs, ".3g"), _number(cosine, ".6f"),
                         _number(top1[0], ".4f"), _number(top1[1], ".4f")]
            metric = delta = ""
            if index < len(metrics):
                name, figures = metrics[index]
                metric, delta = f"{name} {figures['artifact']:.2f}", f"{figures['delta']:+.2f}"
            elif index == 0:
                metric = delta = "-"
            first = index == 0
            rows.append([entry["file"] if first else "", output, *cells, metric, delta,
                         ("PASS" if entry["passed"] else "FAIL") if first else ""])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 6, 8}

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in numeric else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    from pocketbert.quality import metrics as quality

    lines.append("")
    lines += [f"{entry['file']}: {entry['task']} quality on real text: {quality.summary(entry['quality'])}"
              for entry in report["artifacts"] if entry.get("quality")]
    failed = [entry for entry in report["artifacts"] if not entry["passed"]]
    if failed:
        lines.append("")
        lines += [f"FAIL {entry['file']}: {failure}" for entry in failed for failure in entry["failures"]]
    thresholds = ", ".join(f"{k.replace('_', '-')} {v:g}" for k, v in report["thresholds"].items() if v is not None)
    if report.get("default_gates"):
        floors = ", ".join(f"{k} {v:g}" for k, v in report["default_gates"]["quantized"].items())
        thresholds = (f"default gates: float max abs {report['default_gates']['float']['max_abs']:g}, "
                      f"quantized on real text {floors}")
    count = len(report["artifacts"])
    verdict = (f"parity passed: {count} file(s)" if not failed
               else f"parity FAILED: {len(failed)} of {count} file(s)")
    lines.append(f"{verdict} ({thresholds or 'no thresholds'}; {report['sentences']} corpus sentences"
                 + (f"; {report['eval_data']['examples']} eval examples)" if report["eval_data"] else ")"))
    return "\n".join(lines)


@dataclass(frozen=True)
class Inspection(Result):
    """One report per model file (``export.inspection.Inspection``): shapes, dtypes, and per
    accelerator what takes the file and what falls back."""

    reports: tuple

    def text(self, verbose: bool = False) -> str:
        return "\n".join(line for report in self.reports for line in inspection_lines(report, verbose))

    def lines(self) -> list[str]:
        return self.text().split("\n")

    def records(self) -> list[dict]:
        return [{"path": str(r.path), "kind": r.kind, "bytes": r.bytes, "static": r.static, "verdict": r.verdict,
                 **{f"{c.accelerator}": c.verdict for c in r.checks}} for r in self.reports]

    def as_dicts(self) -> list[dict]:
        """``inspect --json``: every field of every report."""
        return [r.as_dict() for r in self.reports]


def inspect(path: str | Path) -> Inspection:
    """Which accelerators (LiteRT CPU/GPU/NPU, ONNX Runtime EPs, ExecuTorch delegates) take
    each model file of an export, or one file, as the runtimes' own checkers say."""
    from pocketbert.export.inspection import inspect_path

    return Inspection(tuple(inspect_path(path)))


def _shape(row: dict) -> str:
    return f"{row['name']} [{', '.join(str(n) for n in row['shape'])}] {row['dtype']}"


def inspection_lines(report, verbose: bool) -> list[str]:
    out = []
    out.append(f"{report.path} ({report.kind}, {report.bytes / 1e6:.1f} MB, {'static' if report.static else 'dynamic'} shapes)")
    out.append(f"  inputs:  {'; '.join(_shape(r) for r in report.inputs) or '(not recorded in the file)'}")
    out.append(f"  outputs: {'; '.join(_shape(r) for r in report.outputs) or '(not recorded in the file)'}")
    if report.tensor_dtypes:
        out.append(f"  weights: {', '.join(f'{n} {d}' for d, n in sorted(report.tensor_dtypes.items(), key=lambda kv: -kv[1]))}")
    width = max((len(c.accelerator) for c in report.checks), default=0)
    for check in report.checks:
        how = {"ran": "ran here", "static": "checked", "unavailable": "no check"}[check.how]
        out.append(f"  {check.accelerator:<{width}}  {how:<9} {check.verdict}")
        # without --verbose: the notes, not the checkers' per-op caveats
        extra = [*check.reasons[1:], *check.notes] if verbose else [n for n in check.notes if not n.startswith("caveat")]
        for line in extra:
            out.append(f"  {'':<{width}}  {'':<9}   {line}")
        if check.measured and check.how == "ran":
            out.append(f"  {'':<{width}}  {'':<9}   measured: " + ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in check.measured.items()))
    for note in report.notes:
        out.append(f"  note: {note}")
    out.append(f"  verdict: {report.verdict}")
    return out
