"""The task registry: what each task means, in one place beside the head classes.

A task ("fill-mask", "question-answering" ...) is the head a model carries and what its
outputs are for. Its ``Task`` entry says everything the rest of pocketbert asks of it:
the axes of its ``logits`` output, the FLOPs its head adds, how quality texts are batched
for it, which quality figures it has, the one it is gated on and their floors, and the
*kinds* of input and answer its pipeline and ``pocketbert run`` deal in. Higher layers key
their behaviour on these kinds (quality maps a figures kind to a function, ``run`` maps an
answer kind to a printer), never on task names, so a task with known kinds of output is
one entry here plus its head classes (``modeling.py``); tests/test_tasks.py checks both the
entries and that no task name is spelled outside ``models/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pocketbert.errors import PocketbertError
from pocketbert.models.config_base import ModelConfig

# Batching of quality texts: one sentence; (sentence, next sentence); a sentence and the
# following ones as its choices.
TEXT_KINDS = ("single", "pair", "choices")
# What quality compares: pooled embeddings, one label per sequence, one label per token,
# the prediction at a masked token, the best answer span.
FIGURES_KINDS = ("embedding", "labels", "token-labels", "masked-token", "spans")
# What `run` reads from one input line: a text, a text or a tab-separated pair, a pair, a
# question with a context, a prompt with its choices.
INPUT_KINDS = ("text", "text-or-pair", "pair", "question-context", "prompt-choices")
# What a pipeline answers: one vector, token vectors, tokens for each [MASK], labels with
# scores, labelled entities, answer spans, ranked choices.
ANSWER_KINDS = ("vector", "token-vectors", "masked-tokens", "labels", "entities", "spans", "choices")

# The documented floors quantized files must keep on real text, by figure (a different model
# scores ~0.05 pooled cosine and chance-level agreement: far below all).
# Retrieval is floored on near-tie-aware figures (quality/metrics.embedding_figures); strict
# nearest-neighbour retention is reported only: float rounding alone moves it by +-0.025.
FLOORS = {"cosine_mean": 0.99, "cosine_min": 0.95, "nn_retention_tie_aware": 0.95, "spearman": 0.98,
          "label_agreement": 0.95, "token_agreement": 0.95, "top1_agreement": 0.90, "span_exact": 0.90}

EMBEDDING_FIGURES = ("cosine_mean", "cosine_min", "cosine_p5", "nn_retention_tie_aware", "spearman", "recall_at_10",
                     "nn_retention")


@dataclass(frozen=True)
class HeadLinear:
    """One matrix product of a task head: ``rows`` is "tokens" (every position) or
    "sequences" (one vector per sequence)."""

    rows: str
    d_in: int
    d_out: int


# (config, head class) -> the head's Linear layers after the backbone (pooler excluded: the
# backbone says when it runs it)
HeadLinears = Callable[[ModelConfig, type], tuple[HeadLinear, ...]]


@dataclass(frozen=True)
class Task:
    name: str
    head_linears: HeadLinears
    texts: str  # one of TEXT_KINDS
    figures_kind: str  # one of FIGURES_KINDS
    quality_output: str  # the output quality compares
    figures: tuple[str, ...]  # the figures quality reports for it (what --target may name)
    agreement: str  # the figure it is gated on ("agreement" in --target, --min-agreement)
    input_kind: str = "text"  # one of INPUT_KINDS
    answer_kind: str | None = None  # one of ANSWER_KINDS; None: no pipeline (a training head)
    # the [B, ...] axes of its "logits" output, when it has one
    logits_axes: Callable[[ModelConfig], tuple[str | int, ...]] | None = None
    masks_middle_token: bool = False  # quality masks one real token per sentence
    named_labels: bool = False  # outputs are classes named by config.id2label

    @property
    def input_axes(self) -> tuple[str, ...]:
        return ("batch", "choices", "sequence") if self.texts == "choices" else ("batch", "sequence")

    @property
    def floors(self) -> dict[str, float]:
        """The floors of the figures this task has."""
        return {name: FLOORS[name] for name in self.figures if name in FLOORS}

    @property
    def has_pipeline(self) -> bool:
        return self.answer_kind is not None


def _masked_lm(config: ModelConfig, head) -> tuple[HeadLinear, ...]:
    h = config.hidden_size
    # transform.dense (DistilBERT: vocab_transform), decoder (MobileBERT: [decoder | dense] is H wide)
    return HeadLinear("tokens", h, h), HeadLinear("tokens", h, config.vocab_size)


def _next_sentence(config: ModelConfig, head) -> tuple[HeadLinear, ...]:
    return (HeadLinear("sequences", config.hidden_size, 2),)  # seq_relationship


def _sequence_classifier(width: Callable[[ModelConfig], int]) -> HeadLinears:
    def linears(config: ModelConfig, head) -> tuple[HeadLinear, ...]:
        h = config.hidden_size
        summary = tuple(HeadLinear("sequences", h, h) for _ in range(head.summary_dense_layers))  # DistilBERT's pre_classifier
        return (*summary, HeadLinear("sequences", h, width(config)))

    return linears


def _token_linear(width: Callable[[ModelConfig], int]) -> HeadLinears:
    return lambda config, head: (HeadLinear("tokens", config.hidden_size, width(config)),)


def _no_head(config: ModelConfig, head) -> tuple[HeadLinear, ...]:
    return ()


FEATURE_EXTRACTION = Task(
    "feature-extraction", _no_head, "single", "embedding", "last_hidden_state", EMBEDDING_FIGURES, "nn_retention_tie_aware",
    answer_kind="token-vectors")
SENTENCE_EMBEDDING = Task(  # pooled inside the graph, as the app gets it
    "sentence-embedding", _no_head, "single", "embedding", "sentence_embedding", EMBEDDING_FIGURES, "nn_retention_tie_aware",
    answer_kind="vector")
FILL_MASK = Task(
    "fill-mask", _masked_lm, "single", "masked-token", "logits", ("top1_agreement", "top5_overlap"), "top1_agreement",
    answer_kind="masked-tokens", logits_axes=lambda c: ("batch", "sequence", c.vocab_size), masks_middle_token=True)
PRETRAINING = Task(
    "pretraining", lambda c, head: (*_masked_lm(c, head), *_next_sentence(c, head)), "single", "masked-token",
    "prediction_logits", ("top1_agreement", "top5_overlap"), "top1_agreement", masks_middle_token=True)
NEXT_SENTENCE_PREDICTION = Task(
    "next-sentence-prediction", _next_sentence, "pair", "labels", "logits", ("label_agreement",), "label_agreement",
    input_kind="pair", answer_kind="labels", logits_axes=lambda c: ("batch", 2))
TEXT_CLASSIFICATION = Task(
    "text-classification", _sequence_classifier(lambda c: c.num_labels), "single", "labels", "logits",
    ("label_agreement",), "label_agreement", input_kind="text-or-pair", answer_kind="labels",
    logits_axes=lambda c: ("batch", c.num_labels), named_labels=True)
MULTIPLE_CHOICE = Task(
    "multiple-choice", _sequence_classifier(lambda c: 1), "choices", "labels", "logits", ("label_agreement",),
    "label_agreement", input_kind="prompt-choices", answer_kind="choices", logits_axes=lambda c: ("batch", "choices"))
TOKEN_CLASSIFICATION = Task(
    "token-classification", _token_linear(lambda c: c.num_labels), "single", "token-labels", "logits",
    ("token_agreement",), "token_agreement", answer_kind="entities",
    logits_axes=lambda c: ("batch", "sequence", c.num_labels), named_labels=True)
QUESTION_ANSWERING = Task(  # qa_outputs: start and end
    "question-answering", _token_linear(lambda c: 2), "pair", "spans", "start_logits", ("span_exact", "span_f1"),
    "span_exact", input_kind="question-context", answer_kind="spans")

# Every task any architecture has, in the order docs list them.
TASKS: tuple[Task, ...] = (FEATURE_EXTRACTION, SENTENCE_EMBEDDING, FILL_MASK, PRETRAINING, NEXT_SENTENCE_PREDICTION,
                           TEXT_CLASSIFICATION, MULTIPLE_CHOICE, TOKEN_CLASSIFICATION, QUESTION_ANSWERING)
TASKS_BY_NAME: dict[str, Task] = {task.name: task for task in TASKS}
DEFAULT_TASK = FILL_MASK


def get_task(name: str) -> Task:
    if name not in TASKS_BY_NAME:
        raise PocketbertError(f"unknown task {name!r} (known: {', '.join(TASKS_BY_NAME)})")
    return TASKS_BY_NAME[name]
