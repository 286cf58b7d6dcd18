"""Task pipelines: text in, answers out, on any Runner (PyTorch model or exported file).

``pipeline(task, model="out/m")(text)`` gives what transformers' pipeline gives on the same
checkpoint (e.g. the top tokens for "The capital of France is [MASK]." with fill-mask). Each
pipeline class names the registry entry it ``serves`` (``models/tasks.py``), which registers it.
A pipeline only tokenizes, calls ``runner(dict of numpy arrays) -> dict of numpy arrays`` and
post-processes, so exported artifacts plug in by providing a runner.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.models import tasks
from pocketbert.models.tasks import Task
from pocketbert.models.configs import ModelConfig
from pocketbert.models.tokenizer import BertTokenizerFast


class PipelineError(PocketbertError):
    """Input a pipeline cannot answer (no [MASK], no context, too long ...)."""


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# {task name: its pipeline class}; each class adds itself by naming the task it serves
PIPELINES: dict[str, type["Pipeline"]] = {}


class Pipeline:
    """Tokenizer + runner + the config fields post-processing needs (labels, max length)."""

    serves: ClassVar[Task]  # the registry entry this pipeline answers
    task: ClassVar[str]
    model_task: ClassVar[str]  # the head the checkpoint is loaded with
    # weights the checkpoint lacked (a head nobody trained): answers are random if any
    untrained_weights: list[str] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "serves" in cls.__dict__:
            if cls.serves.name in PIPELINES:
                raise TypeError(f"{cls.__name__}: {cls.serves.name} already has {PIPELINES[cls.serves.name].__name__}")
            cls.task = cls.model_task = cls.serves.name
            PIPELINES[cls.task] = cls

    def __init__(self, runner, tokenizer: BertTokenizerFast, config: ModelConfig, truncation: bool = True,
                 max_length: int | None = None):
        self.runner = runner
        self.tokenizer = tokenizer
        self.config = config
        self.truncation = truncation
        # a bucketed file takes up to its longest bucket, one sequence at a time
        buckets = getattr(runner, "sequence_buckets", ())
        self.one_at_a_time = bool(runner.fixed_sequence_length or buckets)
        limit = runner.fixed_sequence_length or (buckets[-1] if buckets else config.max_position_embeddings)
        self.max_length = min(limit, tokenizer.model_max_length or limit, max_length or limit)

    @classmethod
    def length_limit(cls, directory: Path) -> int | None:
        """A length the checkpoint's own files set below the model's (sentence-transformers'
        max_seq_length); None: the model's and tokenizer's limits."""
        return None

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        if isinstance(inputs, list):
            return [self.run_one(item, **kwargs) for item in inputs]
        return self.run_one(inputs, **kwargs)

    def run_one(self, item: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    # ---- shared steps --------------------------------------------------------------------
    def encode(self, text: str, pair: str | None = None, **kwargs: Any):
        """Tokenize for the runner: right-padded to its fixed length when it has one; longer
        than the model allows -> truncated with a warning, or an error without truncation."""
        if not text.strip() and not (pair or "").strip():
            raise PipelineError("empty input")
        padding = "max_length" if self.runner.fixed_sequence_length else False
        encoding = self.tokenizer(
            text, pair, truncation=True, max_length=self.max_length, padding=padding, return_tensors="np", **kwargs
        )
        if int(encoding["attention_mask"].sum()) <= (2 if pair is None else 3):  # [CLS] [SEP] (+ [SEP]) alone
            raise PipelineError(f"input {text[:40]!r} has no tokens (only control characters or spaces)")
        if int(encoding["attention_mask"].sum()) == self.max_length:  # full: was anything cut off?
            full = len(self.tokenizer(text, pair)["input_ids"])
            if full > self.max_length and not self.truncation:
                raise PipelineError(
                    f"input is {full} tokens, the model takes at most {self.max_length} (truncation is off)"
                )
            if full > self.max_length:
                warnings.warn(f"input is {full} tokens; truncated to the model's {self.max_length}", stacklevel=3)
        return encoding

    def run(self, encoding) -> dict[str, np.ndarray]:
        return self.runner({name: encoding[name] for name in self.runner.input_names if name in encoding})

    def label(self, index: int) -> str:
        id2label = self.config.id2label or {}
        return id2label.get(int(index), f"LABEL_{int(index)}")


def cosine_similarity(vectors: np.ndarray) -> np.ndarray:
    """[N, D] -> [N, N] cosine of every pair (vectors need not be normalised)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    return unit @ unit.T


class FeatureExtractionPipeline(Pipeline):
    """The encoder's token states, [1, tokens, hidden] as nested lists (special tokens
    included, padding cut), as transformers' feature-extraction pipeline gives them."""

    serves = tasks.FEATURE_EXTRACTION

    def run_one(self, text: str) -> list:
        encoding = self.encode(text)
        length = int(encoding["attention_mask"][0].sum())
        hidden = self.run(encoding)["last_hidden_state"][:, :length]  # [1, tokens, H]
        return hidden.astype(np.float64).tolist()


class SentenceEmbeddingPipeline(Pipeline):
    """One vector per sentence, pooled (and normalised) inside the model as its
    sentence-transformers files say. A list of sentences runs in right-padded batches on
    graphs that take any batch, one by one on fixed-shape ones (TFLite, ExecuTorch)."""

    serves = tasks.SENTENCE_EMBEDDING
    BATCH = 16

    @classmethod
    def length_limit(cls, directory: Path) -> int | None:
        from pocketbert.models.sentence_embedding import read_settings

        return read_settings(directory).max_seq_length

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        if isinstance(inputs, list):
            return [vector.tolist() for vector in self.embed(inputs)]
        return self.run_one(inputs)

    def run_one(self, text: str) -> list[float]:
        return self.embed([text])[0].tolist()

    def embed(self, texts: list[str]) -> np.ndarray:
        """[N, D] float32 embeddings of ``texts``, in order."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        for text in texts:
            self.encode(text)  # the empty / too-long checks, with their messages
        size = 1 if self.one_at_a_time else self.BATCH
        padding = "max_length" if self.runner.fixed_sequence_length else True
        parts = []
        for start in range(0, len(texts), size):
            encoding = self.tokenizer(texts[start : start + size], truncation=True, max_length=self.max_length,
                                      padding=padding, return_tensors="np")
            parts.append(self.run(encoding)["sentence_embedding"].astype(np.float32))  # [b, D]
        return np.concatenate(parts)


class FillMaskPipeline(Pipeline):
    """Top-k tokens and scores for each [MASK] (a list per mask when there are several)."""

    serves = tasks.FILL_MASK

    def run_one(self, text: str, top_k: int = 5) -> list:
        encoding = self.encode(text)
        ids = encoding["input_ids"][0]
        positions = np.flatnonzero(ids == self.tokenizer.mask_token_id)
        if positions.size == 0:
            raise PipelineError(f"no {self.tokenizer.mask_token} in the input: {text!r}")
        logits = self.run(encoding)["logits"][0]  # [S, vocab]
        single = positions.size == 1
        results = []
        for position in positions:
            probs = softmax(logits[position].astype(np.float64))
            best = np.argsort(-probs, kind="stable")[:top_k]
            row = []
            for token in best:
                filled = ids.copy()
                filled[position] = token
                filled = filled[filled != self.tokenizer.pad_token_id]
                row.append(
                    {
                        "score": float(probs[token]),
                        "token": int(token),
                        "token_str": self.tokenizer.decode([int(token)]),
                        "sequence": self.tokenizer.decode(filled, skip_special_tokens=single),
                    }
                )
            results.append(row)
        return results[0] if single else results


class TextClassificationPipeline(Pipeline):
    """Labels (from id2label) with scores, best first; softmax, or sigmoid for one label or
    multi-label configs, as transformers chooses."""

    serves = tasks.TEXT_CLASSIFICATION

    def scores(self, logits: np.ndarray) -> np.ndarray:
        problem = self.config.extra.get("problem_type")
        if problem == "regression":
            return logits
        if problem == "multi_label_classification" or self.config.num_labels == 1:
            return sigmoid(logits)
        return softmax(logits)

    def run_one(self, text: str | tuple[str, str], top_k: int | None = 1) -> list[dict]:
        first, second = (text if isinstance(text, tuple) else (text, None))
        logits = self.run(self.encode(first, second))["logits"][0].astype(np.float64)
        scores = self.scores(logits)
        order = np.argsort(-scores, kind="stable")[: top_k or None]
        return [{"label": self.label(i), "score": float(scores[i])} for i in order]


class TokenClassificationPipeline(Pipeline):
    """Per-token labels, or per-word with ``aggregation`` first / average / max (and
    "simple": adjacent tokens of one entity grouped), with transformers' semantics."""

    serves = tasks.TOKEN_CLASSIFICATION
    AGGREGATIONS = ("none", "simple", "first", "average", "max")

    def run_one(self, text: str, aggregation: str = "none", ignore_labels: tuple[str, ...] = ("O",)) -> list[dict]:
        if aggregation not in self.AGGREGATIONS:
            raise PipelineError(f"unknown aggregation {aggregation!r} (use {', '.join(self.AGGREGATIONS)})")
        encoding = self.encode(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        scores = softmax(self.run(encoding)["logits"][0].astype(np.float64))  # [S, labels]
        tokens = self.tokens(text, encoding, scores)
        if aggregation in ("none", "simple"):
            entities = [self.token_entity(t) for t in tokens]
        else:
            entities = [self.word_entity(word, aggregation) for word in self.words(tokens)]
        if aggregation != "none":
            entities = self.group(entities)
        key = "entity" if aggregation == "none" else "entity_group"
        return [e for e in entities if e[key] not in ignore_labels]

    def tokens(self, text: str, encoding, scores: np.ndarray) -> list[dict]:
        out = []
        for index, token_id in enumerate(encoding["input_ids"][0]):
            if encoding["special_tokens_mask"][0][index]:
                continue
            start, end = (int(v) for v in encoding["offset_mapping"][0][index])
            word = self.tokenizer.convert_ids_to_tokens(int(token_id))
            is_subword = len(word) != len(text[start:end])
            if int(token_id) == self.tokenizer.unk_token_id:
                word, is_subword = text[start:end], False
            out.append({"word": word, "scores": scores[index], "start": start, "end": end, "index": index,
                        "is_subword": is_subword})
        return out

    def token_entity(self, token: dict) -> dict:
        best = int(token["scores"].argmax())
        return {"entity": self.label(best), "score": float(token["scores"][best]), "index": token["index"],
                "word": token["word"], "start": token["start"], "end": token["end"]}

    @staticmethod
    def words(tokens: list[dict]) -> list[list[dict]]:
        groups: list[list[dict]] = []
        for token in tokens:
            if groups and token["is_subword"]:
                groups[-1].append(token)
            else:
                groups.append([token])
        return groups

    def word_entity(self, word: list[dict], aggregation: str) -> dict:
        if aggregation == "first":
            scores = word[0]["scores"]
        elif aggregation == "max":
            scores = max(word, key=lambda t: t["scores"].max())["scores"]
        else:
            scores = np.nanmean(np.stack([t["scores"] for t in word]), axis=0)
        best = int(scores.argmax())
        return {"entity": self.label(best), "score": float(scores[best]),
                "word": self.tokenizer.convert_tokens_to_string([t["word"] for t in word]),
                "start": word[0]["start"], "end": word[-1]["end"]}

    @staticmethod
    def tag(entity: str) -> tuple[str, str]:
        """B-PER -> (B, PER); I-PER -> (I, PER); PER -> (I, PER)."""
        if entity[:2] in ("B-", "I-"):
            return entity[0], entity[2:]
        return "I", entity

    def group(self, entities: list[dict]) -> list[dict]:
        groups: list[list[dict]] = []
        for entity in entities:
            bi, tag = self.tag(entity["entity"])
            if groups and bi != "B" and self.tag(groups[-1][-1]["entity"])[1] == tag:
                groups[-1].append(entity)
            else:
                groups.append([entity])
        return [
            {
                "entity_group": g[0]["entity"].split("-", 1)[-1],  # as transformers names groups
                "score": float(np.nanmean([e["score"] for e in g])),
                "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in g]),
                "start": g[0]["start"],
                "end": g[-1]["end"],
            }
            for g in groups
        ]


class QuestionAnsweringPipeline(Pipeline):
    """The best answer span in the context: contexts longer than the model are read in
    overlapping windows (doc stride); the span maximises p(start) * p(end) among spans
    inside the context, at most ``max_answer_len`` tokens long."""

    serves = tasks.QUESTION_ANSWERING

    def run_one(
        self,
        item: dict | tuple[str, str],
        top_k: int = 1,
        doc_stride: int = 128,
        max_answer_len: int = 15,
        max_seq_len: int = 384,
    ) -> list[dict]:
        question, context = (item["question"], item.get("context")) if isinstance(item, dict) else item
        if not context or not context.strip():
            raise PipelineError("question answering needs a context")
        if not question or not question.strip():
            raise PipelineError("question answering needs a question")
        max_len = min(max_seq_len, self.max_length)
        question_len = len(self.tokenizer(question, add_special_tokens=False)["input_ids"])
        if question_len + 4 >= max_len:
            raise PipelineError(f"question is {question_len} tokens; it must leave room for context in {max_len}")
        stride = min(doc_stride, (max_len - question_len - 3) // 2)
        padding = "max_length" if self.runner.fixed_sequence_length else True
        windows = self.tokenizer(
            question, context, truncation="only_second", max_length=max_len, stride=stride,
            return_overflowing_tokens=True, return_offsets_mapping=True, padding=padding, return_tensors="np",
        )
        answers = []
        for w in range(len(windows["input_ids"])):
            window = {k: windows[k][w : w + 1] for k in windows if k in self.runner.input_names}
            outputs = self.runner(window)
            in_context = np.array([s == 1 for s in windows.sequence_ids(w)])  # [S]
            answers += self.spans(outputs["start_logits"][0], outputs["end_logits"][0], in_context,
                                  windows["offset_mapping"][w], context, top_k, max_answer_len)
        answers.sort(key=lambda a: -a["score"])
        return answers[:top_k]

    @staticmethod
    def spans(start_logits, end_logits, in_context, offsets, context, top_k, max_answer_len) -> list[dict]:
        start = softmax(np.where(in_context, start_logits, -10000.0).astype(np.float64))
        end = softmax(np.where(in_context, end_logits, -10000.0).astype(np.float64))
        joint = np.triu(np.outer(start, end)) * np.tril(np.ones((len(start),) * 2), max_answer_len - 1)
        joint *= np.outer(in_context, in_context)
        best = np.argsort(-joint, axis=None, kind="stable")[:top_k]
        out = []
        for flat in best:
            s, e = np.unravel_index(flat, joint.shape)
            if joint[s, e] <= 0:
                continue
            begin, finish = int(offsets[s][0]), int(offsets[e][1])
            out.append({"score": float(joint[s, e]), "start": begin, "end": finish, "answer": context[begin:finish]})
        return out


class MultipleChoicePipeline(Pipeline):
    """Ranks candidate continuations of a prompt: inputs [1, C, S] -> softmax over C."""

    serves = tasks.MULTIPLE_CHOICE

    def run_one(self, item: dict | tuple, top_k: int | None = None) -> list[dict]:
        prompt, choices = (item["prompt"], item["choices"]) if isinstance(item, dict) else (item[0], list(item[1:]))
        if len(choices) < 2:
            raise PipelineError("multiple choice needs a prompt and at least two choices")
        encodings = [self.encode(prompt, choice) for choice in choices]
        length = max(e["input_ids"].shape[1] for e in encodings)
        stacked = {}
        for name in self.runner.input_names:
            rows = [np.pad(e[name][0], (0, length - e[name].shape[1])) for e in encodings]
            stacked[name] = np.stack(rows)[None]  # [1, C, S]
        probs = softmax(self.runner(stacked)["logits"][0].astype(np.float64))
        order = np.argsort(-probs, kind="stable")[: top_k or None]
        return [{"choice": choices[i], "index": int(i), "score": float(probs[i])} for i in order]


class NextSentencePredictionPipeline(Pipeline):
    """Is the second sentence the continuation of the first? (label 0 = yes, as in BERT)."""

    serves = tasks.NEXT_SENTENCE_PREDICTION
    LABELS = ("is_next", "not_next")

    def run_one(self, item: tuple[str, str], top_k: int | None = None) -> list[dict]:
        if not isinstance(item, tuple) or len(item) != 2:
            raise PipelineError("next-sentence prediction needs two sentences")
        probs = softmax(self.run(self.encode(*item))["logits"][0].astype(np.float64))
        order = np.argsort(-probs, kind="stable")[: top_k or None]
        return [{"label": self.LABELS[i], "score": float(probs[i])} for i in order]


def pipeline(task: str, model: str | Path, threads: int | None = None, truncation: bool = True,
             accelerator: str = "cpu") -> Pipeline:
    """A pipeline over a checkpoint (directory or hub id), an export artifact directory, or
    a model file inside one (.onnx, .ort, .pt, .ptl). An ``accelerator`` the file or the
    machine cannot use falls back to the CPU with a warning: answers stay answers."""
    from pocketbert.formats import open_runner
    from pocketbert.contracts.artifact import Artifact, is_artifact
    from pocketbert.models.checkpoint import resolve
    from pocketbert.models.configs import load_config
    from pocketbert.models.tokenizer import load_tokenizer

    if task not in PIPELINES:
        raise PipelineError(f"unknown task {task!r} (known: {', '.join(PIPELINES)})")
    cls = PIPELINES[task]
    path = Path(model)
    directory = path.parent if path.is_file() else path
    untrained = None
    if is_artifact(directory):
        artifact = Artifact.open(directory)
        if artifact.task != cls.model_task:
            raise PipelineError(f"{directory} was exported for {artifact.task}, not {cls.model_task}")
        untrained = artifact.manifest.untrained_weights
    else:
        directory = resolve(model)
    tokenizer = load_tokenizer(directory)  # a vocabulary the model cannot take fails before the weights load
    runner = open_runner(model, threads=threads, task=cls.model_task, accelerator=accelerator, fallback=True)
    pipe = cls(runner, tokenizer, load_config(directory), truncation=truncation, max_length=cls.length_limit(directory))
    pipe.untrained_weights = untrained if untrained is not None else list(runner.model.untrained_weights)
    return pipe
