"""``pocketbert run``: a pipeline over a checkpoint or any exported file."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from pocketbert.commands.export import add_require_trained_head, warn_untrained
from pocketbert.commands.common import accelerator_names, at_least, threads
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
    p.add_argument("--model", required=True, metavar="MODEL", help="checkpoint directory or hub id")
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


def _task_input(task: str, line: str, context: str | None):
    parts = line.split("\t")
    if task == "question-answering":
        if context is not None:
            return (line, context)
        if len(parts) != 2:
            raise PocketbertError(f"question answering needs a context: use --context or 'question<TAB>context' ({line[:40]!r})")
        return tuple(parts)
    if task == "next-sentence-prediction":
        if len(parts) != 2:
            raise PocketbertError(f"next-sentence prediction needs 'sentence<TAB>sentence' ({line[:40]!r})")
        return tuple(parts)
    if task == "multiple-choice":
        if len(parts) < 3 or not all(part.strip() for part in parts):
            raise PocketbertError(f"multiple choice needs 'prompt<TAB>choice<TAB>choice...', none empty ({line[:40]!r})")
        return tuple(parts)
    if task == "text-classification" and len(parts) == 2:
        return tuple(parts)
    return line


def _json_line(result: dict) -> str:
    """One JSON object; NaN or Infinity (not JSON) means the model is broken, not an answer."""
    try:
        return json.dumps(result, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise PocketbertError(f"the model's output for {result['input'][:40]!r} is NaN or infinite "
                              "(a broken checkpoint or file)") from None


def _vector_line(vector) -> str:
    values = np.asarray(vector, dtype=np.float64)
    shown = ", ".join(f"{v:.4f}" for v in values[:6])
    return f"{values.size} dims, norm {np.linalg.norm(values):.4f}: [{shown}{', ...' if values.size > 6 else ''}]"


def _print_human(task: str, text: str, result) -> None:
    print(text.replace("\t", " | "))
    if task == "sentence-embedding":
        print("  " + _vector_line(result))
        return
    if task == "feature-extraction":
        tokens = result[0]
        print(f"  {len(tokens)} tokens x {len(tokens[0])}; first token " + _vector_line(tokens[0]))
        return
    rows = result if task != "fill-mask" or not result or isinstance(result[0], dict) else [r for mask in result for r in mask]
    for row in rows:
        score = f"{row.get('score', 0.0):.4f}"
        if task == "fill-mask":
            print(f"  {score}  {row['token_str']:<15} {row['sequence']}")
        elif task == "question-answering":
            print(f"  {score}  {row['answer']!r} [{row['start']}:{row['end']}]")
        elif task == "multiple-choice":
            print(f"  {score}  {row['choice']}")
        elif task == "token-classification":
            label = row.get("entity_group", row.get("entity"))
            print(f"  {score}  {label:<12} {row['word']!r} [{row['start']}:{row['end']}]")
        else:
            print(f"  {score}  {row['label']}")


def run_run(args: argparse.Namespace) -> int:
    from pocketbert.pipelines import pipeline

    if args.device not in accelerator_names():
        raise PocketbertError(f"device {args.device!r} is not available (known: {', '.join(accelerator_names())})")
    lines = args.text or _read_stdin_lines()
    if not lines or not any(line.strip() for line in lines):
        raise PocketbertError("empty input: give TEXT arguments or lines on stdin")
    items = [_task_input(args.task, line, args.context) for line in lines]  # check before loading
    if args.similarity and args.task != "sentence-embedding":
        raise PocketbertError("--similarity needs --task sentence-embedding (one vector per input)")
    if args.similarity and len(lines) < 2:
        raise PocketbertError("--similarity needs at least two inputs")
    pipe = pipeline(args.task, args.model, threads=args.threads, truncation=not args.no_truncation,
                    accelerator=args.device)
    untrained = {"task": args.task, "untrained_weights": pipe.untrained_weights}
    from pocketbert.export import check_trained

    check_trained(args.model, args.task, pipe.untrained_weights, args.require_trained_head)
    try:
        return _run_embeddings(pipe, lines, args) if args.task == "sentence-embedding" else _run_each(pipe, lines, items, args)
    finally:
        warn_untrained(untrained)  # after the answers, where it is seen


def _run_each(pipe, lines: list[str], items: list, args: argparse.Namespace) -> int:
    options = {}
    if args.top_k is not None:
        options["top_k"] = args.top_k
    if args.task == "token-classification":
        options["aggregation"] = args.aggregation
    for line, item in zip(lines, items):
        result = pipe(item, **options)
        if args.json:
            print(_json_line({"input": line, "result": result}))
        else:
            _print_human(args.task, line, result)
    return 0


def _run_embeddings(pipe, lines: list[str], args: argparse.Namespace) -> int:
    """All inputs in batches; vectors, or with --similarity the cosine matrix and each
    input's nearest others (what on-device semantic search ranks by)."""
    from pocketbert.pipelines import cosine_similarity

    vectors = pipe.embed(lines)  # [N, D]
    if not np.isfinite(vectors).all():
        raise PocketbertError("the model's embeddings are NaN or infinite (a broken checkpoint or file)")
    if not args.similarity:
        for line, vector in zip(lines, vectors):
            if args.json:
                print(_json_line({"input": line, "result": vector.astype(float).tolist()}))
            else:
                _print_human("sentence-embedding", line, vector)
        return 0
    similarity = cosine_similarity(vectors.astype(np.float64))
    top_k = min(args.top_k or 1, len(lines) - 1)
    for i, line in enumerate(lines):
        order = [j for j in np.argsort(-similarity[i], kind="stable") if j != i][:top_k]
        nearest = [{"index": int(j), "input": lines[j], "cosine": float(similarity[i, j])} for j in order]
        if args.json:
            print(_json_line({"input": line, "nearest": nearest, "similarity": [round(float(v), 6) for v in similarity[i]]}))
        else:
            print(line)
            for row in nearest:
                print(f"  {row['cosine']:.4f}  [{row['index']}] {row['input']}")
    return 0
