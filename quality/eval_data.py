"""Labelled evaluation data and the task metrics computed on it.

The kind of data comes from the file's extension:

  .tsv / .jsonl   classification: ``text``, optional ``text_pair``, ``label`` (a label name of
                  the model's config, e.g. "positive" or "LABEL_1", or an integer id)
  .json           SQuAD v1.1: {"data": [{"paragraphs": [{"context": ..., "qas": [{"id": ...,
                  "question": ..., "answers": [{"text": ...}, ...]}]}]}]}

Every problem with a file is an ``EvalDataError``: one line naming the file (and the line
or the SQuAD entry). Accuracy is the share of examples whose best label is the gold one;
exact match and F1 follow the official SQuAD v1.1 evaluation script (answers normalised by
lowercasing and dropping punctuation, the articles a/an/the and extra whitespace; the best
score over the gold answers of each question).

The quantization sweep (quantize/sweep.py) and ``pocketbert parity`` both read data here.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import string
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.models.tasks import QUESTION_ANSWERING, TEXT_CLASSIFICATION
from pocketbert.textfile import parse_json, read_text_file, tsv_rows

CLASSIFICATION_SUFFIXES = (".tsv", ".jsonl")
SQUAD_SUFFIXES = (".json",)
# the pipeline task each kind of data is scored with
TASK_OF_KIND = {"classification": TEXT_CLASSIFICATION.name, "squad": QUESTION_ANSWERING.name}


class EvalDataError(PocketbertError):
    """An eval data file that cannot be read, or that does not fit the model."""


@dataclass(frozen=True)
class LabelledText:
    text: str
    text_pair: str | None
    label: str | int  # a label name, or an id
    line: int  # where it is in the file (1-based; TSV counts the header)


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class EvalData:
    path: Path
    kind: str  # "classification" or "squad"
    examples: list
    skipped: int = 0  # SQuAD questions without a gold answer (v2 "impossible" ones)

    @property
    def task(self) -> str:
        return TASK_OF_KIND[self.kind]

    def check_task(self, task: str, what: str = "the model") -> None:
        """Refuse data the model's task cannot be scored on."""
        if task != self.task:
            raise EvalDataError(f"{self.path}: {self.kind} eval data is for {self.task} models; {what} is {task}")

    def describe(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "examples": len(self.examples), "skipped": self.skipped}


# ---- reading -------------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    content = read_text_file(path, "eval data", EvalDataError)
    if not content.strip():
        raise EvalDataError(f"{path}: eval data is empty")
    return content


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in CLASSIFICATION_SUFFIXES:
        return "classification"
    if suffix in SQUAD_SUFFIXES:
        return "squad"
    raise EvalDataError(
        f"{path}: unknown eval data extension {suffix or '(none)'!r} "
        "(.tsv or .jsonl: classification with text and label; .json: SQuAD v1.1)"
    )


def read_eval_data(path: str | Path) -> EvalData:
    """Classification rows (.tsv, .jsonl) or SQuAD questions (.json)."""
    path = Path(path)
    kind = _kind(path)
    if kind == "classification":
        return EvalData(path, kind, read_classification(path))
    questions, skipped = _read_squad(path)
    return EvalData(path, kind, questions, skipped)


def _label(value, where: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise EvalDataError(f"{where}: label must be a label name or an integer id, got {json.dumps(value)}")
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise EvalDataError(f"{where}: empty label")
    return value


def _pair(value, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EvalDataError(f"{where}: text_pair must be a string")
    return value


def read_classification(path: str | Path) -> list[LabelledText]:
    """Rows of .jsonl ({"text", "label"[, "text_pair"]}) or .tsv (a header naming text and
    label columns, text_pair optional)."""
    path = Path(path)
    if path.suffix.lower() not in CLASSIFICATION_SUFFIXES:
        _kind(path)  # unknown extension: that error
        raise EvalDataError(f"{path}: classification eval data is .tsv or .jsonl, not {path.suffix}")
    content = _read_text(path)
    examples = []
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            row = parse_json(line, where, EvalDataError)
            if not isinstance(row, dict) or "text" not in row or "label" not in row:
                raise EvalDataError(f"{where}: expected 'text' and 'label' in every row")
            if not isinstance(row["text"], str) or not row["text"].strip():
                raise EvalDataError(f"{where}: 'text' must be a non-empty string")
            examples.append(LabelledText(row["text"], _pair(row.get("text_pair"), where), _label(row["label"], where), number))
    else:
        for line, row in tsv_rows(content, path, ("text", "label"), EvalDataError):
            where = f"{path}:{line}"
            if not row["text"].strip():
                raise EvalDataError(f"{where}: empty text")
            examples.append(LabelledText(row["text"], _pair(row.get("text_pair"), where), _label(row["label"], where),
                                         line))
    if not examples:
        raise EvalDataError(f"{path}: no examples in it")
    return examples


def read_squad(path: str | Path) -> list[SquadQuestion]:
    """The answerable questions of a SQuAD v1.1-format JSON file."""
    return _read_squad(Path(path))[0]


def _read_squad(path: Path) -> tuple[list[SquadQuestion], int]:
    content = _read_text(path)
    document = parse_json(content, str(path), EvalDataError)
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise EvalDataError(f'{path}: not SQuAD JSON (expected an object with a "data" list of articles)')
    questions, skipped = [], 0
    for a, article in enumerate(document["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise EvalDataError(f'{path}: data[{a}] has no "paragraphs" list')
        for p, paragraph in enumerate(paragraphs):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str) \
                    or not isinstance(paragraph.get("qas"), list):
                raise EvalDataError(f'{where}: expected "context" (a string) and "qas" (a list)')
            if not paragraph["context"].strip():  # refused now, not after the models have loaded
                raise EvalDataError(f'{where}: the "context" is empty')
            for q, qa in enumerate(paragraph["qas"]):
                here = f"{where}.qas[{q}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                    raise EvalDataError(f'{here}: expected "question" (a string)')
                if not qa["question"].strip():
                    raise EvalDataError(f'{here}: the "question" is empty')
                answers = qa.get("answers", [])
                if not isinstance(answers, list) or not all(isinstance(x, dict) and isinstance(x.get("text"), str)
                                                            for x in answers):
                    raise EvalDataError(f'{here}: "answers" must be a list of {{"text": ...}} objects')
                if not answers:  # SQuAD v2's unanswerable questions: v1.1 metrics cannot score them
                    skipped += 1
                    continue
                questions.append(SquadQuestion(str(qa.get("id", f"{a}.{p}.{q}")), qa["question"], paragraph["context"],
                                               tuple(x["text"] for x in answers)))
    if not questions:
        raise EvalDataError(f"{path}: no answerable questions in it")
    return questions, skipped


# ---- classification accuracy ---------------------------------------------------------------------
def label_names(config) -> dict[str, int]:
    """The model's label names -> ids (transformers' LABEL_i when config.json has none)."""
    id2label = config.id2label or {i: f"LABEL_{i}" for i in range(config.num_labels)}
    return {str(name): int(i) for i, name in id2label.items()}


def label_ids(examples: list[LabelledText], config, path: str | Path = "eval data") -> list[int]:
    """Gold ids: a label is a name of the model's labels or an id in 0..num_labels-1."""
    problem = (getattr(config, "extra", None) or {}).get("problem_type")
    if problem in ("regression", "multi_label_classification") or config.num_labels < 2:
        raise EvalDataError(f"{path}: accuracy needs a single-label classifier; this model is "
                            f"{problem or 'a one-output regressor'}")
    names = label_names(config)
    ids = []
    for example in examples:
        label = example.label
        if str(label) in names:
            ids.append(names[str(label)])
        elif (isinstance(label, int) or str(label).isdigit()) and 0 <= int(label) < config.num_labels:
            ids.append(int(label))
        else:
            raise EvalDataError(
                f"{path}:{example.line}: label {label!r} is not one of the model's labels "
                f"({', '.join(names)}) or ids 0..{config.num_labels - 1}"
            )
    return ids


def predict_labels(pipe, examples: list[LabelledText]) -> list[int]:
    """The best label id of a text-classification pipeline for each example."""
    with _truncation_summary(len(examples)):
        return [int(np.argmax(pipe.run(pipe.encode(e.text, e.text_pair))["logits"][0])) for e in examples]


def classification_accuracy(pipe, examples: list[LabelledText], path: str | Path = "eval data") -> float:
    """Share (0..1) of examples a text-classification pipeline labels right."""
    gold = label_ids(examples, pipe.config, path)
    return float(np.mean([p == g for p, g in zip(predict_labels(pipe, examples), gold)]))


# ---- SQuAD exact match and F1 (the official v1.1 evaluation) -----------------------------------------
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, the articles a/an/the and extra whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1(prediction: str, truth: str) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = collections.Counter(predicted) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: list[str], questions: list[SquadQuestion]) -> dict[str, float]:
    """Exact match and F1 in points (0..100), each the best over a question's gold answers."""
    if len(predictions) != len(questions):
        raise ValueError(f"{len(predictions)} predictions for {len(questions)} questions")
    em = [max(exact_match(p, t) for t in q.answers) for p, q in zip(predictions, questions)]
    f = [max(f1(p, t) for t in q.answers) for p, q in zip(predictions, questions)]
    return {"exact_match": 100.0 * float(np.mean(em)), "f1": 100.0 * float(np.mean(f))}


def predict_answers(pipe, questions: list[SquadQuestion], path: str | Path = "eval data") -> list[str]:
    """The best answer span of a question-answering pipeline per question ("" when none)."""
    out = []
    for q in questions:
        try:
            best = pipe({"question": q.question, "context": q.context}, top_k=1)
        except PocketbertError as exc:
            raise EvalDataError(f"{path}: question {q.id}: {exc}") from None
        out.append(best[0]["answer"] if best else "")
    return out


@contextlib.contextmanager
def _truncation_summary(total: int):
    """Pipelines warn once per truncated input; over a data set, one warning says how many."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    truncated = [w for w in caught if "truncated to the model's" in str(w.message)]
    for w in caught:
        if w not in truncated:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if truncated:
        warnings.warn(f"{len(truncated)} of {total} eval examples were longer than the model takes and were "
                      "truncated", stacklevel=3)
