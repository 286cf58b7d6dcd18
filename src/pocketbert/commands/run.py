"""``pocketbert run``: a pipeline over a checkpoint or any exported file."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

import numpy as np

from pocketbert.commands.export import add_require_trained_head, warn_untrained
from pocketbert.commands.common import accelerator_names, at_least, input_path, threads
from pocketbert.errors import PocketbertError
from pocketbert.models.tasks import TASKS, get_task



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


def _text(task: str, line: str, parts: list[str], context: str | None):
    return line


def _text_or_pair(task: str, line: str, parts: list[str], context: str | None):
    return tuple(parts) if len(parts) == 2 else line


def _pair(task: str, line: str, parts: list[str], context: str | None):
    if len(parts) != 2:
        raise PocketbertError(f"{task} needs 'sentence<TAB>sentence' ({line[:40]!r})")
    return tuple(parts)


def _question_context(task: str, line: str, parts: list[str], context: str | None):
    if context is not None:
        return (line, context)
    if len(parts) != 2:
        raise PocketbertError(f"{task} needs a context: use --context or 'question<TAB>context' ({line[:40]!r})")
    return tuple(parts)


def _prompt_choices(task: str, line: str, parts: list[str], context: str | None):
    if len(parts) < 3 or not all(part.strip() for part in parts):
        raise PocketbertError(f"{task} needs 'prompt<TAB>choice<TAB>choice...', none empty ({line[:40]!r})")
    return tuple(parts)


# How one input line becomes a pipeline's input, by the task's input kind (``models/tasks.py``).
PARSERS = {"text": _text, "text-or-pair": _text_or_pair, "pair": _pair, "question-context": _question_context,
           "prompt-choices": _prompt_choices}


def _task_input(task: str, line: str, context: str | None):
    return PARSERS[get_task(task).input_kind](task, line, line.split("\t"), context)


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


def _print_vector(result) -> None:
    print("  " + _vector_line(result))


def _print_token_vectors(result) -> None:
    tokens = result[0]
    print(f"  {len(tokens)} tokens x {len(tokens[0])}; first token " + _vector_line(tokens[0]))


def _rows_printer(line: Callable[[dict], str]) -> Callable:
    """A printer of scored rows (a list per [MASK] when there are several), one line each."""
    def print_rows(result) -> None:
        rows = [r for mask in result for r in mask] if result and not isinstance(result[0], dict) else result
        for row in rows:
            print(f"  {row.get('score', 0.0):.4f}  {line(row)}")

    return print_rows


def _entity(row: dict) -> str:
    label = row.get("entity_group", row.get("entity"))
    return f"{label:<12} {row['word']!r} [{row['start']}:{row['end']}]"


# How a pipeline's answer is printed for people, by the task's answer kind (``models/tasks.py``).
PRINTERS: dict[str, Callable] = {
    "vector": _print_vector,
    "token-vectors": _print_token_vectors,
    "masked-tokens": _rows_printer(lambda row: f"{row['token_str']:<15} {row['sequence']}"),
    "labels": _rows_printer(lambda row: row["label"]),
    "entities": _rows_printer(_entity),
    "spans": _rows_printer(lambda row: f"{row['answer']!r} [{row['start']}:{row['end']}]"),
    "choices": _rows_printer(lambda row: row["choice"]),
}


def _print_human(task: str, text: str, result) -> None:
    print(text.replace("\t", " | "))
    PRINTERS[get_task(task).answer_kind](result)


def run_run(args: argparse.Namespace) -> int:
    from pocketbert.pipelines import pipeline

    if args.device not in accelerator_names():
        raise PocketbertError(f"device {args.device!r} is not available (known: {', '.join(accelerator_names())})")
    lines = args.text or _read_stdin_lines()
    if not lines or not any(line.strip() for line in lines):
        raise PocketbertError("empty input: give TEXT arguments or lines on stdin")
    items = [_task_input(args.task, line, args.context) for line in lines]  # check before loading
    vectors = get_task(args.task).answer_kind == "vector"
    if args.similarity and not vectors:
        vector_tasks = ", ".join(t.name for t in TASKS if t.answer_kind == "vector")
        raise PocketbertError(f"--similarity needs --task {vector_tasks} (one vector per input)")
    if args.similarity and len(lines) < 2:
        raise PocketbertError("--similarity needs at least two inputs")
    pipe = pipeline(args.task, args.model, threads=args.threads, truncation=not args.no_truncation,
                    accelerator=args.device)
    from pocketbert.export import check_trained

    check_trained(args.model, args.task, pipe.untrained_weights, args.require_trained_head)
    try:
        return _run_embeddings(pipe, lines, args) if vectors else _run_each(pipe, lines, items, args)
    finally:
        warn_untrained(args.task, pipe.untrained_weights)  # after the answers, where it is seen


def _run_each(pipe, lines: list[str], items: list, args: argparse.Namespace) -> int:
    options = {}
    if args.top_k is not None:
        options["top_k"] = args.top_k
    if get_task(args.task).answer_kind == "entities":
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
                _print_human(args.task, line, vector)
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
