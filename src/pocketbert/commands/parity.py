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


def write_json(report: dict, path: str) -> None:
    from pocketbert.atomic import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def run_parity(args: argparse.Namespace) -> int:
    from pocketbert import api

    result = api.parity(
        args.model, args.artifacts, eval_data=args.eval_data, max_abs=args.max_abs, min_top1=args.min_top1,
        seq_len=args.seq_len, max_metric_drop=args.max_metric_drop, min_cosine=args.min_cosine,
        min_agreement=args.min_agreement, min_nn=args.min_nn, task=args.task,
    )
    print(result)
    if args.json:
        write_json(result.report, args.json)
        print(f"wrote {args.json}")
    return 0 if result.passed else EXIT_PARITY_FAILED
