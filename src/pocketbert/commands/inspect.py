"""``pocketbert inspect``: will a file run on the phone's CPU, GPU or NPU?"""

from __future__ import annotations

import argparse
import json

from pocketbert.commands.common import input_path, output_file


def add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="which accelerators (LiteRT CPU/GPU/NPU, ONNX Runtime EPs, ExecuTorch delegates) take a file",
        description="For each model file of ARTIFACT (or one .tflite/.onnx/.ort/.pte/.pt/.ptl file, exported "
        "here or not): shapes, dtypes, size, and per accelerator the nodes it takes, what falls back to the CPU "
        "and why, as the runtimes' own checkers say. The LiteRT GPU check runs the file on a GPU device when "
        "there is one (a software Vulkan device counts); the rest read the file.",
    )
    p.add_argument("path", metavar="ARTIFACT|FILE", type=input_path)
    p.add_argument("--json", type=output_file, metavar="FILE", help="also write the full report as JSON")
    p.add_argument("--verbose", action="store_true", help="every reason and note, not only the first")
    p.set_defaults(run=run_inspect)


def _shape(row: dict) -> str:
    return f"{row['name']} [{', '.join(str(n) for n in row['shape'])}] {row['dtype']}"


def print_inspection(report, verbose: bool) -> None:
    print(f"{report.path} ({report.kind}, {report.bytes / 1e6:.1f} MB, {'static' if report.static else 'dynamic'} shapes)")
    print(f"  inputs:  {'; '.join(_shape(r) for r in report.inputs) or '(not recorded in the file)'}")
    print(f"  outputs: {'; '.join(_shape(r) for r in report.outputs) or '(not recorded in the file)'}")
    if report.tensor_dtypes:
        print(f"  weights: {', '.join(f'{n} {d}' for d, n in sorted(report.tensor_dtypes.items(), key=lambda kv: -kv[1]))}")
    width = max((len(c.accelerator) for c in report.checks), default=0)
    for check in report.checks:
        how = {"ran": "ran here", "static": "checked", "unavailable": "no check"}[check.how]
        print(f"  {check.accelerator:<{width}}  {how:<9} {check.verdict}")
        # without --verbose: the notes, not the checkers' per-op caveats
        extra = [*check.reasons[1:], *check.notes] if verbose else [n for n in check.notes if not n.startswith("caveat")]
        for line in extra:
            print(f"  {'':<{width}}  {'':<9}   {line}")
        if check.measured and check.how == "ran":
            print(f"  {'':<{width}}  {'':<9}   measured: " + ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in check.measured.items()))
    for note in report.notes:
        print(f"  note: {note}")
    print(f"  verdict: {report.verdict}")


def run_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pocketbert.atomic import atomic_file
    from pocketbert.export.inspection import inspect_path

    reports = inspect_path(args.path)
    for report in reports:
        print_inspection(report, args.verbose)
    if args.json:
        with atomic_file(args.json) as tmp:
            Path(tmp).write_text(json.dumps([r.as_dict() for r in reports], indent=1) + "\n", encoding="utf-8")
    return 0
