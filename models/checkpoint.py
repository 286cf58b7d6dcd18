"""Checkpoints by what they say they are: the class comes from config.json, and new ones
are created from the registry.

The file formats and the strict/lenient key matching are ``weights.py``, finding a
directory or hub id is ``hub.py``; both sit below the models. This module sits above the
registry and keeps the names older code imports from here (``resolve``,
``CheckpointWarning``, ``read_weights`` ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pocketbert.atomic import atomic_directory
from pocketbert.errors import PocketbertError
from pocketbert.models.configs import load_config
from pocketbert.models.hub import HUB_PATTERNS, resolve  # noqa: F401  (re-exported)
from pocketbert.models.modeling import PreTrainedModel
from pocketbert.models.registry import DEFAULT_TASK, class_for_config, get_architecture
from pocketbert.models.vocab import build_vocab
from pocketbert.models.weights import (  # noqa: F401  (re-exported)
    IGNORED_BUFFERS,
    SAFETENSORS_INDEX,
    SAFETENSORS_NAME,
    TORCH_INDEX,
    TORCH_NAME,
    CheckpointWarning,
    match_state_dict,
    read_weights,
    save_pretrained,
)
from pocketbert.models.wordpiece import read_vocab_file


def load_pretrained(
    name_or_path: str | Path,
    model_class: type[PreTrainedModel] | None = None,
    task: str | None = None,
    **config_changes: Any,
) -> PreTrainedModel:
    """Build the model a checkpoint describes (or ``model_class``, or the ``task``'s class
    of its architecture) and fill it with the checkpoint's weights."""
    directory = resolve(name_or_path)
    if model_class is None:
        model_class = class_for_config(load_config(directory), task)
    return model_class.from_pretrained(directory, **config_changes)


def load_model(name_or_path: str | Path, task: str | None = None, **config_changes: Any) -> PreTrainedModel:
    """The factory: the class comes from config.json (``model_type``, ``architectures``)
    unless ``task`` names one."""
    return load_pretrained(name_or_path, task=task, **config_changes)


def create_checkpoint(
    architecture: str,
    out_dir: str | Path,
    task: str | None = None,
    layers: int | None = None,
    seed: int = 0,
    force: bool = False,
    vocab_file: str | Path | None = None,
) -> PreTrainedModel:
    """A complete, randomly initialised checkpoint of the paper-size architecture, with
    vocab.txt and tokenizer.json (see ``vocab.py``, or the user's ``vocab_file``).

    Nothing can be downloaded where pocketbert is tested, and fp32 latency does not depend
    on weight values, so this is the default model of benchmarks and demos.
    """
    arch = get_architecture(architecture)
    config = arch.default_config()
    if layers is not None:
        if layers < 1:
            raise PocketbertError(f"--layers must be >= 1, got {layers}")
        config = config.replace(num_hidden_layers=layers)
    if vocab_file is not None:  # a real vocab.txt is used as is; the model is sized to it
        vocab = read_vocab_file(vocab_file)
        config = config.replace(vocab_size=max(vocab.values()) + 1)
    else:
        vocab = {token: i for i, token in enumerate(build_vocab(config.vocab_size))}
    config = config.with_random_weights(seed)  # the quality gate judges random weights by what they can show
    model_class = arch.model_class(task or DEFAULT_TASK)
    model_class.check_fits_in_memory(config, f"{architecture} with {config.num_hidden_layers} layers")
    tokenizer = arch.tokenizer_class(vocab, model_max_length=config.max_position_embeddings)
    model = model_class(config).init_weights(seed)
    with atomic_directory(out_dir, force=force) as tmp:
        save_pretrained(model, tmp)
        tokenizer.save_pretrained(tmp)
    return model
