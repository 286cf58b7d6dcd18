"""``pocketbert run``: a pipeline over a checkpoint or any exported file."""

from __future__ import annotations

import argparse
import sys

from pocketbert.commands.export import add_require_trained_head, report
from pocketbert.commands.common import accelerator_names, at_least, input_path, threads
from pocketbert.errors import PocketbertError



# ---- pocketbert run ----------------------------------------------------------------------------
def _pipeline_tasks() -> list[str]:
    from pocketbert.pipelines import PIPELINES

    return list(PIPELINES)


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a task pipeline on text (arguments, or one input per line on stdin)",
        description="Run a task on each TEXT, or on each line of stdin when no TEXT is given. "
        "Pair inputs are tab-separated: question<TAB>context, sentence<TAB>sentence, "
        "prompt<TAB>choice<TAB>choice...",
    )
    p.add_argument("--task", required=True, choices=_pipeline_tasks(), metavar="TASK", help="one of: %(choices)s")
    p.add_argument("--model", required=True, metavar="MODEL", type=input_path, help="checkpoint directory or hub id")
    p.add_argument("text", nargs="*", metavar="TEXT")
    p.add_argument("--top-k", type=at_least(1), default=None, help="answers per input (fill-mask default 5, others 1)")
    p.add_argument("--context", help="question answering: the context every question is asked about")
    p.add_argument("--aggregation", default="first", help="token-classification: none, simple, first, average, max")
    p.add_argument("--no-truncation", action="store_true", help="error on inputs longer than the model allows")
    p.add_argument("--threads", type=threads, help="intra-op threads")
    p.add_argument("--device", default="cpu", metavar="|".join(accelerator_names()),
                   help="what an exported file runs on: cpu, or gpu for a .tflite (LiteRT CompiledModel; falls "
                        "back to the CPU with a warning when the machine or the graph cannot)")
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.add_argument("--similarity", action="store_true",
                   help="sentence-embedding: cosine similarity of the inputs and each one's nearest (--top-k) others")
    add_require_trained_head(p)
    p.set_defaults(run=run_run)


def _read_stdin_lines() -> list[str]:
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PocketbertError(f"stdin is not UTF-8 (line {line}, byte {exc.start})") from None
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def run_run(args: argparse.Namespace) -> int:
    from pocketbert import api

    answers = api.run(args.task, args.model, args.text or _read_stdin_lines(), top_k=args.top_k, context=args.context,
                      aggregation=args.aggregation, truncation=not args.no_truncation, threads=args.threads,
                      device=args.device, similarity=args.similarity, require_trained_head=args.require_trained_head)
    return report(answers, "\n".join(answers.json_lines()) if args.json else None)
