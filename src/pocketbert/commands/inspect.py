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


def run_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pocketbert import api
    from pocketbert.atomic import atomic_file

    result = api.inspect(args.path)
    print(result.text(verbose=args.verbose))
    if args.json:
        with atomic_file(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result.as_dicts(), indent=1) + "\n", encoding="utf-8")
    return 0
