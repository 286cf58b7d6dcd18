"""``pocketbert parity``: exported files against their PyTorch checkpoint, as a CI gate.

Exit codes: 0 every file within the thresholds; 1 parity failed (a threshold broken, or
an output missing, of another shape or not finite); 2 bad input (no such artifact, a file
that does not match its manifest, unreadable eval data or data that does not fit the
task), printed as one ``pocketbert: error: ...`` line.
"""

from __future__ import annotations

import argparse
import json

from pocketbert.commands.common import at_least, fraction, non_negative, input_path, output_file, task_names

EXIT_PARITY_FAILED = 1

EPILOG = """\
exit codes: 0 = every file within the thresholds, 1 = parity failed (a threshold broken,
or an output missing, of another shape or not finite), 2 = bad input (no such artifact,
a file that does not match its manifest's sha256, unreadable eval data, or eval data
that does not fit the artifact's task).

eval data: .tsv (header with text, label, optional text_pair) or .jsonl ({"text",
"label", "text_pair"?}) for text-classification, the label a name of the model's labels
or an integer id; SQuAD v1.1 .json for question-answering (exact match and F1).
Metrics are in points (0..100)."""


# ---- pocketbert parity ----------------------------------------------------------------------------
def add_parity(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parity",
        help="check exported files against the PyTorch checkpoint (exit 1 when a threshold fails)",
        description="Compare every ARTIFACT (an export directory: each model file it lists; or one\n"
        "model file inside an export) with MODEL, the checkpoint it was exported from: per\n"
        "output max and mean abs diff, cosine and top-1 agreement on random ids over the\n"
        "file's validation shapes and on 32 sentences of the project corpus; with\n"
        "--eval-data also the task metric of the file and of PyTorch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", type=input_path, help="checkpoint directory (or hub id) the artifacts were exported from")
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", type=input_path,
                   help="export directory, a model file inside one, or a file pocketbert did not export "
                        "(Optimum's .onnx, litert-torch's .tflite: inputs matched by name, else position)")
    p.add_argument("--task", choices=task_names(), metavar="TASK",
                   help="files pocketbert did not export: the task they compute (default: the checkpoint's head)")
    p.add_argument("--eval-data", metavar="FILE", type=input_path, help="labelled data: .tsv/.jsonl classification or SQuAD .json")
    p.add_argument("--max-abs", type=non_negative, metavar="X", help="fail when an output's max abs diff is over X")
    p.add_argument("--min-top1", type=fraction, metavar="Y", help="fail when a top-1 agreement (0..1) is under Y")
    p.add_argument("--max-metric-drop", type=non_negative, metavar="P",
                   help="with --eval-data: fail when a file's metric is more than P points under PyTorch's")
    p.add_argument("--min-cosine", type=fraction, metavar="C",
                   help="feature extraction: fail when the mean pooled-embedding cosine on real text is under C")
    p.add_argument("--min-agreement", type=fraction, metavar="A",
                   help="fail when the task's agreement on real text (labels, tokens, masked top-1, spans, "
                        "nearest neighbours) is under A")
    p.add_argument("--min-nn", type=fraction, metavar="N", help="embeddings: nearest-neighbour retention floor (tie-aware: "
                   "a changed neighbour fp32 ranked within 0.01 of its own is not a miss)")
    p.add_argument("--seq-len", type=at_least(1), metavar="N",
                   help="sequence length for files without a fixed one (default: their export length)")
    p.add_argument("--json", metavar="FILE", type=output_file, help="also write the full report as JSON")
    p.set_defaults(run=run_parity)


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


def write_json(report: dict, path: str) -> None:
    from pocketbert.atomic import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def run_parity(args: argparse.Namespace) -> int:
    from pocketbert.quality.parity import parity

    report = parity(
        args.model, args.artifacts, eval_data=args.eval_data, max_abs=args.max_abs, min_top1=args.min_top1,
        seq_len=args.seq_len, max_metric_drop=args.max_metric_drop, min_cosine=args.min_cosine,
        min_agreement=args.min_agreement, min_nn=args.min_nn, task=args.task,
    )
    print(format_report(report))
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    return 0 if report["passed"] else EXIT_PARITY_FAILED
