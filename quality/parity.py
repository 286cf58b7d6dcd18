"""Does a shipped file still compute what the PyTorch checkpoint computes? The check an
app's CI gates on (``pocketbert parity``).

For every model file of every artifact given (an artifact directory: each file its
manifest lists; or one model file inside an artifact), against the checkpoint loaded
with the artifact's head:

* random ids over the artifact's validation shapes (``validate.random_batches``);
* real sentences from the project corpus (models/data/corpus_en.txt), tokenized with
  the artifact's tokenizer and padded to its fixed length when it has one;

each giving, per output, the figures of ``quality.agreement``: max and mean abs diff,
cosine similarity and top-1 agreement (argmax over the last axis, real tokens only for
per-token outputs). With labelled data
(see ``quality/eval_data.py``): the task metric of the file and of PyTorch on the same
tokens (accuracy, or SQuAD exact match and F1; in points, 0..100) and the delta.

Thresholds turn figures into ``passed`` and ``failures``: a max abs diff over
``max_abs`` or a top-1 agreement under ``min_top1`` (random or sentences), a metric more
than ``max_metric_drop`` points under PyTorch's, and always outputs that are missing,
of another shape or not finite. Problems with the inputs themselves (no such artifact, a
file that does not match its manifest's sha256, eval data that does not fit the task)
are ``PocketbertError``s instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketbert.quality import gate, metrics as quality
from pocketbert.errors import PocketbertError, first_line
from pocketbert.models.tasks import get_task
from pocketbert.contracts.format import DEFAULT_ATOL

SENTENCES = 32  # real sentences per file


class ParityError(PocketbertError):
    """Arguments parity cannot check (no such artifact, a checkpoint that does not fit it)."""


@dataclass
class Target:
    """One model file of an artifact, or a file pocketbert did not export (``foreign``)."""

    artifact: object | None  # contracts.artifact.Artifact; None for a foreign file
    role: str
    path: Path
    # from the manifest; a foreign file has none: its suffix and the checkpoint it is
    # checked against say them
    format: str
    task: str

    @property
    def directory(self) -> Path:
        return self.artifact.directory if self.artifact is not None else self.path.parent


# ---- arguments ----------------------------------------------------------------------------------------
def check_thresholds(max_abs=None, min_top1=None, max_metric_drop=None) -> None:
    if max_abs is not None and not max_abs >= 0:
        raise ParityError(f"--max-abs must be >= 0, got {max_abs:g}")
    if min_top1 is not None and not 0 <= min_top1 <= 1:
        raise ParityError(f"--min-top1 is a fraction between 0 and 1, got {min_top1:g}")
    if max_metric_drop is not None and not max_metric_drop >= 0:
        raise ParityError(f"--max-metric-drop must be >= 0 (points), got {max_metric_drop:g}")


def resolve_targets(path: str | Path, model_dir=None, task: str | None = None) -> list[Target]:
    """The model files an argument names, each checked against its manifest's sha256; a
    model file outside any export (Optimum's .onnx, litert-torch's .tflite) is checked
    against ``model_dir`` for ``task`` (default: the checkpoint's own head)."""
    from pocketbert.contracts.artifact import Artifact, is_artifact

    path = Path(path)
    if not path.exists():
        raise ParityError(f"{path}: no such artifact directory or model file")
    if path.is_dir():
        artifact = Artifact.open(path)  # no manifest.json: ArtifactError
        roles = list(artifact.manifest.files)
    else:
        if not is_artifact(path.parent):
            return [_foreign_target(path, model_dir, task)]
        artifact = Artifact.open(path.parent)
        roles = [r for r, entry in artifact.manifest.files.items() if entry.path == path.name]
        if not roles:
            raise ParityError(f"{path}: not a model file listed in {path.parent / 'manifest.json'}")
    if not roles:
        raise ParityError(f"{path}: its manifest lists no model files")
    return [Target(artifact, role, artifact.model_path(role), artifact.manifest.format, artifact.task) for role in roles]


def _foreign_target(path: Path, model_dir, task: str | None) -> Target:
    from pocketbert.formats import format_for_file
    from pocketbert.models.checkpoint import resolve
    from pocketbert.models.configs import load_config
    from pocketbert.models.registry import class_for_config

    plugin = format_for_file(path)  # an unknown suffix: one line naming the known ones
    if task is None:
        task = class_for_config(load_config(resolve(model_dir))).task
    return Target(None, "model", path, plugin.kind_of(path), task)


def load_reference(model_dir, task: str):
    """The checkpoint with the artifact's head, as a TorchRunner. A head the checkpoint has
    no weights for would be random: refused."""
    from pocketbert.formats import TorchRunner
    from pocketbert.models import load_model
    from pocketbert.models.checkpoint import CheckpointWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(model_dir, task=task)
    for w in caught:
        if issubclass(w.category, CheckpointWarning) and "newly initialised" in str(w.message):
            raise ParityError(
                f"{model_dir}: no trained weights for the {task} head the artifact has "
                f"({' '.join(str(w.message).split())}); pass the checkpoint the artifact was exported from"
            )
        if not issubclass(w.category, CheckpointWarning):  # another head's weights going unused is fine
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return TorchRunner(model)


def check_same_model(target: Target, model_dir) -> None:
    """An artifact of another architecture or vocabulary cannot be this checkpoint's export."""
    from pocketbert.contracts.artifact import is_artifact
    from pocketbert.models.checkpoint import resolve
    from pocketbert.models.configs import load_config

    if is_artifact(model_dir):
        raise ParityError(f"{model_dir}: an export artifact; MODEL is the PyTorch checkpoint it was exported from")
    if target.artifact is None and not (target.directory / "config.json").is_file():
        return  # a foreign file alone: its outputs show whether it is this model
    ours = load_config(resolve(model_dir))
    theirs = load_config(target.directory)
    # a foreign file is judged by the config.json beside it (Optimum and transformers write one)
    what = (f"{target.directory} is a {theirs.model_type} export" if target.artifact is not None
            else f"{target.path}: the config.json beside it is a {theirs.model_type} model's")
    if theirs.model_type != ours.model_type:
        raise ParityError(f"{what}; {model_dir} is a {ours.model_type} checkpoint")
    if theirs.vocab_size != ours.vocab_size:
        raise ParityError(f"{what} with a vocabulary of {theirs.vocab_size} tokens; {model_dir} has {ours.vocab_size}")


def spec_for(target: Target, model, seq_len: int | None, runner=None):
    """The ExportSpec of the file: as exported, or (dynamic files) at ``seq_len`` when given;
    a foreign file's from the model and the file's own static length (batch 1 then)."""
    import dataclasses

    from pocketbert.contracts.spec import DEFAULT_SEQUENCE_LENGTH, MIN_SEQUENCE, ExportSpec

    if target.artifact is None:
        fixed = runner.fixed_sequence_length
        spec = ExportSpec.for_model(model, sequence=fixed or DEFAULT_SEQUENCE_LENGTH, static=fixed is not None)
    else:
        spec = target.artifact.spec()
    if spec.static or seq_len is None:
        return spec
    if not MIN_SEQUENCE <= seq_len <= spec.max_sequence:
        raise ParityError(f"--seq-len must be between {MIN_SEQUENCE} and {spec.max_sequence} for this model, got {seq_len}")
    return dataclasses.replace(spec, sequence=seq_len)


class _Guarded:
    """A runner whose failures to run become ValidationErrors (recorded as parity failures)."""

    def __init__(self, runner, name: str):
        self.runner, self.name = runner, name
        self.input_names, self.output_names = runner.input_names, runner.output_names
        self.fixed_sequence_length = runner.fixed_sequence_length

    def __call__(self, inputs):
        from pocketbert.quality.validate import ValidationError

        try:
            return self.runner(inputs)
        except PocketbertError:
            raise
        except Exception as exc:
            shape = list(np.shape(inputs.get("input_ids")))
            raise ValidationError(f"{self.name} fails to run input shape {shape} ({first_line(exc)})") from None


# ---- real sentences ---------------------------------------------------------------------------------
def corpus_sentences(count: int = SENTENCES) -> list[str]:
    """``count`` sentences spread over the project corpus (varied lengths and topics)."""
    from pocketbert.models.vocab import corpus_lines

    lines = corpus_lines()
    count = min(count, len(lines) - 1)
    return [lines[round(i * (len(lines) - 2) / max(count - 1, 1))] for i in range(count)]


def sentence_batches(tokenizer, spec, task: str, count: int = SENTENCES) -> list[dict[str, np.ndarray]]:
    """Model inputs for ``count`` corpus sentences, batched as ``quality.text_batches`` does
    (pairs and choices from the following sentences, padded to a static graph's shape)."""
    return quality.text_batches(tokenizer, spec, task, corpus_sentences(count))[0]


# ---- labelled data ----------------------------------------------------------------------------------
def _tokenizer_dir(target: Target, model_dir) -> Path:
    from pocketbert.models.checkpoint import resolve

    if target.artifact is not None and target.artifact.manifest.tokenizer_files:
        return target.directory
    return resolve(model_dir)  # an artifact exported without tokenizer files: the checkpoint's


def task_metrics(pipe, data) -> dict[str, float]:
    """Accuracy, or exact match and F1, in points (0..100)."""
    from pocketbert.quality import eval_data

    if data.kind == "classification":
        return {"accuracy": 100.0 * eval_data.classification_accuracy(pipe, data.examples, data.path)}
    return eval_data.squad_scores(eval_data.predict_answers(pipe, data.examples, data.path), data.examples)


def evaluate(target: Target, runner, reference, tokenizer, config, data, cache: dict) -> dict:
    """The metric of the file and of PyTorch (same tokenizer, same maximum length)."""
    from pocketbert.pipelines import PIPELINES

    cls = PIPELINES[data.task]
    pipe = cls(runner, tokenizer, config)
    key = (target.task, pipe.max_length)
    if key not in cache:
        ref = cls(reference, tokenizer, config)
        ref.max_length = pipe.max_length  # read exactly as the file reads (its fixed length truncates)
        cache[key] = task_metrics(ref, data)
    ours, theirs = task_metrics(pipe, data), cache[key]
    return {
        name: {"artifact": ours[name], "pytorch": theirs[name], "delta": ours[name] - theirs[name]}
        for name in ours
    }


# ---- thresholds ---------------------------------------------------------------------------------------
def threshold_failures(entry: dict, max_abs=None, min_top1=None, max_metric_drop=None) -> list[str]:
    """What in an entry's figures breaks a threshold, one line each."""
    failures = []
    for check, title in (("random", "random inputs"), ("sentences", "corpus sentences")):
        for output, figures in (entry.get(check) or {}).items():
            diff, top1 = figures["max_abs_diff"], figures["top1_agreement"]
            if max_abs is not None and not diff <= max_abs:
                failures.append(f"{output}: max abs diff {diff:.3g} > {max_abs:g} ({title})")
            if min_top1 is not None and top1 is not None and not top1 >= min_top1:
                failures.append(f"{output}: top-1 agreement {top1:.4f} < {min_top1:g} ({title})")
    if max_metric_drop is not None:
        for metric, figures in (entry.get("eval") or {}).items():
            drop = -figures["delta"]
            if not drop <= max_metric_drop + 1e-9:
                failures.append(f"{metric}: {figures['artifact']:.2f} is {drop:.2f} points under PyTorch's "
                                f"{figures['pytorch']:.2f} (max drop {max_metric_drop:g})")
    return failures


DEFAULT_GATES = {"float": {"max_abs": DEFAULT_ATOL}, "quantized": quality.FLOORS,
                 "quantized_random_weights": gate.RANDOM_WEIGHTS_FLOORS}


def quality_failures(entry: dict, min_cosine=None, min_agreement=None, min_nn=None) -> list[str]:
    """The real-text gates: pooled cosine mean (feature extraction), the task's agreement
    metric, tie-aware nearest-neighbour retention."""
    found = entry.get("quality")
    if not found:
        return []
    floors = {}
    if min_cosine is not None:
        floors["cosine_mean"] = min_cosine
    if min_agreement is not None:
        floors[get_task(found["task"]).agreement] = min_agreement
    if min_nn is not None:
        floors["nn_retention_tie_aware"] = min_nn
    return quality.floor_failures(found, floors)


def default_gate_failures(entry: dict) -> list[str]:
    """With no thresholds given, nothing different passes: a float file must match to
    DEFAULT_ATOL, a quantized one must keep the documented quality floors on real text
    (``quality/gate.py``: random weights are judged by what they can show)."""
    if entry.get("quantization") is None:
        return threshold_failures(entry, max_abs=DEFAULT_ATOL)
    return gate.failures(entry.get("quality"), bool(entry.get("random_weights")))


# ---- the check ----------------------------------------------------------------------------------------
def check_file(target: Target, model_dir, reference, data=None, seq_len=None, sentences: int = SENTENCES,
               eval_cache: dict | None = None) -> dict:
    """Figures for one model file (no thresholds applied; structural failures listed)."""
    from pocketbert.formats import runner_for_file
    from pocketbert.quality.agreement import agreement
    from pocketbert.quality.validate import ValidationError, random_batches
    from pocketbert.models.checkpoint import resolve
    from pocketbert.models.configs import load_config
    from pocketbert.models.tokenizer import load_tokenizer

    model = reference.model
    if target.artifact is None:
        from pocketbert.formats import open_foreign
        from pocketbert.contracts.foreign import AsCanonical

        runner = AsCanonical(open_foreign(target.path), tuple(model.output_names), str(target.path))
    else:
        runner = runner_for_file(target.path, target.artifact.manifest)
    spec = spec_for(target, model, seq_len, runner)
    guarded = _Guarded(runner, target.path.name)
    quantization = target.artifact.manifest.quantization if target.artifact is not None else None
    entry = {
        "artifact": str(target.directory),
        "file": str(target.path),
        "role": target.role,
        "format": target.format,
        "task": target.task,
        "random_weights": model.config.random_weights,  # judged by what random weights can show
        "quantization": (quantization or {}).get("name"),
        "fixed_sequence_length": spec.sequence if spec.static else None,
        "random": None,
        "sentences": None,
        "sentence_count": 0,
        "eval": None,
        "quality": None,
        "failures": [],
    }
    try:
        batches = random_batches(spec, model.config.vocab_size)
        entry["random"] = agreement(reference, guarded, batches, spec.output_names, target.path.name)
    except ValidationError as exc:
        entry["failures"].append(f"random inputs: {' '.join(str(exc).split())}")
    tokenizer = load_tokenizer(_tokenizer_dir(target, model_dir))
    batches = sentence_batches(tokenizer, spec, target.task, sentences)
    entry["sentence_count"] = len(corpus_sentences(sentences))
    try:
        entry["sentences"] = agreement(reference, guarded, batches, spec.output_names,
                                       f"{target.path.name} on corpus sentences")
    except ValidationError as exc:
        entry["failures"].append(f"corpus sentences: {' '.join(str(exc).split())}")
    if not entry["failures"]:  # outputs of another shape have no quality to measure
        try:
            entry["quality"] = quality.measure(target.task, reference, guarded, tokenizer, spec)
        except ValidationError as exc:
            entry["failures"].append(f"real text: {' '.join(str(exc).split())}")
    if data is not None and not entry["failures"]:
        config = load_config(target.directory if target.artifact is not None else resolve(model_dir))
        try:
            entry["eval"] = evaluate(target, guarded, reference, tokenizer, config, data,
                                     eval_cache if eval_cache is not None else {})
        except ValidationError as exc:
            entry["failures"].append(f"eval data: {' '.join(str(exc).split())}")
    return entry


def parity(model_dir, artifacts, eval_data=None, max_abs=None, min_top1=None, seq_len=None,
           max_metric_drop=None, sentences: int = SENTENCES, min_cosine=None, min_agreement=None,
           min_nn=None, task: str | None = None) -> dict:
    """Check every model file of ``artifacts`` against the checkpoint ``model_dir`` (files
    pocketbert did not export too: for ``task``, default the checkpoint's head).

    Returns {"model", "thresholds", "eval_data", "artifacts": [entry per file], "passed"};
    each entry has per-output figures under "random" and "sentences", task metrics under
    "eval" (with ``eval_data``), "passed" and "failures". Every argument is checked (files
    against their sha256, eval data against each artifact's task) before any model runs.
    """
    from pocketbert.quality.eval_data import read_eval_data

    check_thresholds(max_abs, min_top1, max_metric_drop)
    for flag, value in (("--min-cosine", min_cosine), ("--min-agreement", min_agreement), ("--min-nn", min_nn)):
        if value is not None and not 0 <= value <= 1:
            raise ParityError(f"{flag} is a fraction between 0 and 1, got {value:g}")
    explicit = any(v is not None for v in (max_abs, min_top1, max_metric_drop, min_cosine, min_agreement, min_nn))
    if not artifacts:
        raise ParityError("give at least one ARTIFACT (an export directory or a model file in one)")
    if seq_len is not None and seq_len < 3:
        raise ParityError(f"--seq-len must be >= 3, got {seq_len}")
    if max_metric_drop is not None and eval_data is None:
        raise ParityError("--max-metric-drop needs --eval-data")
    data = read_eval_data(eval_data) if eval_data is not None else None
    targets = [target for path in artifacts for target in resolve_targets(path, model_dir, task)]
    for target in targets:
        check_same_model(target, model_dir)
        if data is not None:
            data.check_task(target.task, str(target.path))
    references: dict[str, object] = {}
    eval_cache: dict = {}
    entries = []
    for target in targets:
        task = target.task
        if task not in references:
            references[task] = load_reference(model_dir, task)
        entry = check_file(target, model_dir, references[task], data, seq_len, sentences, eval_cache)
        if explicit:
            entry["failures"] += threshold_failures(entry, max_abs, min_top1, max_metric_drop)
            entry["failures"] += quality_failures(entry, min_cosine, min_agreement, min_nn)
        else:
            entry["failures"] += default_gate_failures(entry)
        entry["passed"] = not entry["failures"]
        entries.append(entry)
    return {
        "model": str(model_dir),
        "thresholds": {"max_abs": max_abs, "min_top1": min_top1, "max_metric_drop": max_metric_drop,
                       "min_cosine": min_cosine, "min_agreement": min_agreement, "min_nn": min_nn},
        "default_gates": None if explicit else DEFAULT_GATES,
        "eval_data": data.describe() if data is not None else None,
        "sentences": sentences,
        "artifacts": entries,
        "passed": all(entry["passed"] for entry in entries),
    }
