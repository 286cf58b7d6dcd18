"""Run a task's pipeline on texts: a checkpoint or any exported file, answers as records."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketbert.api.checks import accelerator_names, checked, positive, threads as thread_count
from pocketbert.api.exporting import untrained_warnings
from pocketbert.api.result import Result
from pocketbert.errors import PocketbertError
from pocketbert.models.tasks import TASKS, get_task


# ---- one input line as a pipeline's input -------------------------------------------------------
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


def _vector_lines(result) -> list[str]:
    return ["  " + _vector_line(result)]


def _token_vector_lines(result) -> list[str]:
    tokens = result[0]
    return [f"  {len(tokens)} tokens x {len(tokens[0])}; first token " + _vector_line(tokens[0])]


def _scored_rows(line: Callable[[dict], str]) -> Callable:
    """Lines of scored rows (a list per [MASK] when there are several), one each."""
    def rows_lines(result) -> list[str]:
        rows = [r for mask in result for r in mask] if result and not isinstance(result[0], dict) else result
        return [f"  {row.get('score', 0.0):.4f}  {line(row)}" for row in rows]

    return rows_lines


def _entity(row: dict) -> str:
    label = row.get("entity_group", row.get("entity"))
    return f"{label:<12} {row['word']!r} [{row['start']}:{row['end']}]"


# How a pipeline's answer reads for people, by the task's answer kind (``models/tasks.py``).
PRINTERS: dict[str, Callable] = {
    "vector": _vector_lines,
    "token-vectors": _token_vector_lines,
    "masked-tokens": _scored_rows(lambda row: f"{row['token_str']:<15} {row['sequence']}"),
    "labels": _scored_rows(lambda row: row["label"]),
    "entities": _scored_rows(_entity),
    "spans": _scored_rows(lambda row: f"{row['answer']!r} [{row['start']}:{row['end']}]"),
    "choices": _scored_rows(lambda row: row["choice"]),
}


def _human_lines(task: str, text: str, result) -> list[str]:
    return [text.replace("\t", " | "), *PRINTERS[get_task(task).answer_kind](result)]


# ---- the answers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Answers(Result):
    """A row per input: ``{"input", "result"}``, or with ``similarity`` ``{"input", "nearest",
    "similarity"}`` (each input's nearest others and its cosine row)."""

    task: str
    rows: tuple[dict, ...]
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = []
        for row in self.rows:
            if "nearest" in row:
                out.append(row["input"])
                out += [f"  {n['cosine']:.4f}  [{n['index']}] {n['input']}" for n in row["nearest"]]
            else:
                out += _human_lines(self.task, row["input"], row["result"])
        return out

    def json_lines(self) -> list[str]:
        """``run --json``: one JSON object per input."""
        return [_json_line(row) for row in self.rows]

    def records(self) -> list[dict]:
        return [dict(row) for row in self.rows]


def run(task: str, model: str | Path, texts: str | Sequence[str], *, top_k: int | None = None,
        context: str | None = None, aggregation: str = "first", truncation: bool = True, threads: int | None = None,
        device: str = "cpu", similarity: bool = False, require_trained_head: bool = False) -> Answers:
    """``task``'s pipeline over ``model`` (a checkpoint, hub id, export or model file) on each
    text; pair inputs are tab-separated (question<TAB>context ...). ``similarity``: for
    vector tasks, each input's nearest ``top_k`` others by cosine."""
    from pocketbert.export import check_trained
    from pocketbert.pipelines import pipeline

    if device not in accelerator_names():
        raise PocketbertError(f"device {device!r} is not available (known: {', '.join(accelerator_names())})")
    lines = [texts] if isinstance(texts, str) else list(texts)
    if not lines or not any(line.strip() for line in lines):
        raise PocketbertError("empty input: give TEXT arguments or lines on stdin")
    items = [_task_input(task, line, context) for line in lines]  # check before loading
    vectors = get_task(task).answer_kind == "vector"
    if similarity and not vectors:
        vector_tasks = ", ".join(t.name for t in TASKS if t.answer_kind == "vector")
        raise PocketbertError(f"--similarity needs --task {vector_tasks} (one vector per input)")
    if similarity and len(lines) < 2:
        raise PocketbertError("--similarity needs at least two inputs")
    top_k = positive("top_k", top_k)
    pipe = pipeline(task, model, threads=checked("threads", threads, thread_count), truncation=truncation,
                    accelerator=device)
    check_trained(model, task, pipe.untrained_weights, require_trained_head)
    warnings = untrained_warnings(task, pipe.untrained_weights)
    try:
        if not vectors:
            options = {**({"top_k": top_k} if top_k is not None else {}),
                       **({"aggregation": aggregation} if get_task(task).answer_kind == "entities" else {})}
            return Answers(task, tuple({"input": line, "result": pipe(item, **options)} for line, item in zip(lines, items)),
                           warnings)
        return Answers(task, tuple(_embeddings(pipe, lines, similarity, top_k)), warnings)
    except PocketbertError as exc:  # the warning is still owed: it explains a broken answer
        raise PocketbertError(" ".join([str(exc), *(f"({w})" for w in warnings)])) from None


def _embeddings(pipe, lines: list[str], similarity: bool, top_k: int | None) -> list[dict]:
    """All inputs in batches; vectors, or with ``similarity`` each input's nearest others
    and its cosine row (what on-device semantic search ranks by)."""
    from pocketbert.pipelines import cosine_similarity

    vectors = pipe.embed(lines)  # [N, D]
    if not np.isfinite(vectors).all():
        raise PocketbertError("the model's embeddings are NaN or infinite (a broken checkpoint or file)")
    if not similarity:
        return [{"input": line, "result": vector.astype(float).tolist()} for line, vector in zip(lines, vectors)]
    matrix = cosine_similarity(vectors.astype(np.float64))
    top_k = min(top_k or 1, len(lines) - 1)
    rows = []
    for i, line in enumerate(lines):
        order = [j for j in np.argsort(-matrix[i], kind="stable") if j != i][:top_k]
        nearest = [{"index": int(j), "input": lines[j], "cosine": float(matrix[i, j])} for j in order]
        rows.append({"input": line, "nearest": nearest, "similarity": [round(float(v), 6) for v in matrix[i]]})
    return rows
