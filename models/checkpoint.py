"""Checkpoint directories in transformers' format: find, read, check, load, save, create.

Loading is strict where transformers is lenient by accident and lenient where it is
lenient on purpose:

* a backbone weight that is missing, a key nobody knows, or a shape that differs is an
  error naming the key;
* a head (or pooler) weight the checkpoint lacks is freshly initialised, with a warning
  (loading ``bert-base-uncased`` for text classification);
* weights of another head of the same architecture are dropped, with a warning (loading
  a pre-training checkpoint as a bare encoder);
* tied aliases (the MLM decoder) and the buffers old transformers versions saved
  (``position_ids``) are ignored, and TF-era ``gamma``/``beta`` names are renamed.

Keys are compared in "task space" (with the backbone prefix, e.g. ``mobilebert.``), so a
bare-model checkpoint and a task checkpoint meet on the same names.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pocketbert.atomic import atomic_directory, atomic_file
from pocketbert.errors import CheckpointError, PocketbertError
from pocketbert.models.configs import CONFIG_NAME, ModelConfig, load_config
from pocketbert.models.modeling import PreTrainedModel, TaskModel
from pocketbert.models.registry import DEFAULT_TASK, class_for_config, get_architecture

SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_NAME = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"
# what a hub snapshot needs: config, weights in either format, tokenizer files
HUB_PATTERNS = [
    CONFIG_NAME,
    "*.safetensors",
    SAFETENSORS_INDEX,
    TORCH_NAME,
    "pytorch_model-*.bin",
    TORCH_INDEX,
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]
IGNORED_BUFFERS = ("position_ids", "embeddings.token_type_ids")


class CheckpointWarning(UserWarning):
    """A checkpoint loaded, but not every weight came from it (or was used)."""


# ---- finding a checkpoint ---------------------------------------------------------------
def resolve(name_or_path: str | Path) -> Path:
    """A local checkpoint directory, or a hub id looked up through huggingface_hub's cache
    (honours HF_HUB_OFFLINE and HF_HOME / HF_HUB_CACHE)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path}: not a directory (a checkpoint is a directory with config.json)")
        return path
    name = str(name_or_path)
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise CheckpointError(f"{name}: no such directory") from None
    try:
        return Path(snapshot_download(repo_id=name, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # huggingface_hub raises a family of offline/HTTP/not-found errors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{name}: no such directory, and not available from the Hugging Face hub or its cache ({reason})"
        ) from None


# ---- reading weights --------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except Exception as exc:  # safetensors raises SafetensorError, OSError, ValueError ...
        raise CheckpointError(f"{path}: not a readable safetensors file ({_one_line(exc)})") from None


def _read_torch_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        # weights_only: a pickle can run code; only tensors and plain containers are allowed
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({_one_line(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: does not hold a state dict of tensors")
    return state


def _read_index(index: Path, reader) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index}: not a valid shard index ({_one_line(exc)})") from None
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(f"{index}: names shard {shard}, which is missing")
        state.update(reader(shard_path))
    return state


def read_weights(directory: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """All tensors of a checkpoint directory and the file they came from (safetensors first)."""
    directory = Path(directory)
    candidates = [
        (SAFETENSORS_NAME, _read_safetensors),
        (SAFETENSORS_INDEX, lambda p: _read_index(p, _read_safetensors)),
        (TORCH_NAME, _read_torch_bin),
        (TORCH_INDEX, lambda p: _read_index(p, _read_torch_bin)),
    ]
    for name, reader in candidates:
        path = directory / name
        if path.is_file():
            return reader(path), path
    raise CheckpointError(f"{directory}: no {SAFETENSORS_NAME} or {TORCH_NAME}")


# ---- matching keys ----------------------------------------------------------------------
def _normalise(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, tensor in state.items():
        if key.endswith(IGNORED_BUFFERS):
            continue  # buffers older transformers saved; ours are rebuilt from the config
        if key.endswith(".gamma"):
            key = key[: -len("gamma")] + "weight"
        elif key.endswith(".beta"):
            key = key[: -len("beta")] + "bias"
        out[key] = tensor
    return out


def _known_keys(config: ModelConfig) -> set[str]:
    """Every key any head of this architecture has, in task space (built on the meta device)."""
    keys: set[str] = set()
    for cls in get_architecture(config.model_type).tasks.values():
        with torch.device("meta"):
            model = cls(config)
        keys |= set(_task_space(model, model.state_dict()))
    return keys


def _task_space(model: PreTrainedModel, state: dict[str, Any]) -> dict[str, Any]:
    if isinstance(model, TaskModel):
        return dict(state)
    return {f"{model.base_model_prefix}.{k}": v for k, v in state.items()}


def _listing(keys: set[str]) -> str:
    first, *rest = sorted(keys)
    return first + (f" (and {len(rest)} more)" if rest else "")


def match_state_dict(
    model: PreTrainedModel, state: dict[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """Check ``state`` against ``model`` and return it keyed as ``model`` expects."""
    prefix = model.base_model_prefix + "."
    state = _normalise(state)
    bare_checkpoint = not any(k.startswith(prefix) for k in state)
    ckpt = {(prefix + k if bare_checkpoint else k): v for k, v in state.items()}

    aliases = set(_task_space(model, dict.fromkeys(model.tied_aliases())))
    expected = {k: v for k, v in _task_space(model, model.state_dict()).items() if k not in aliases}
    ckpt = {k: v for k, v in ckpt.items() if k not in aliases}

    missing = expected.keys() - ckpt.keys()
    required = {k for k in missing if k.startswith(prefix) and not k.startswith(prefix + "pooler.")}
    if required:
        raise CheckpointError(f"{source}: missing weight {_listing(required)}")
    unexpected = ckpt.keys() - expected.keys()
    unknown = unexpected - _known_keys(model.config) if unexpected else set()
    if unknown:
        raise CheckpointError(
            f"{source}: unexpected weight {_listing(unknown)} (not part of any {model.config.model_type} model)"
        )
    for key in sorted(expected.keys() & ckpt.keys()):
        want, got = tuple(expected[key].shape), tuple(ckpt[key].shape)
        if want != got:
            raise CheckpointError(f"{source}: weight {key} has shape {got}, {type(model).__name__} expects {want}")

    name = type(model).__name__
    if missing:
        warnings.warn(
            f"{source}: {name} weights not in the checkpoint, newly initialised: {_listing(missing)}",
            CheckpointWarning,
            stacklevel=3,
        )
    if unexpected:
        warnings.warn(
            f"{source}: checkpoint weights {name} does not use (another head): {_listing(unexpected)}",
            CheckpointWarning,
            stacklevel=3,
        )
    strip = 0 if isinstance(model, TaskModel) else len(prefix)
    return {k[strip:]: ckpt[k] for k in expected.keys() & ckpt.keys()}


# ---- loading and saving -----------------------------------------------------------------
def load_pretrained(
    name_or_path: str | Path,
    model_class: type[PreTrainedModel] | None = None,
    task: str | None = None,
    **config_changes: Any,
) -> PreTrainedModel:
    """Build the model a checkpoint describes and fill it with the checkpoint's weights."""
    directory = resolve(name_or_path)
    config = load_config(directory)
    if config_changes:
        config = config.replace(**config_changes)
    cls = model_class or class_for_config(config, task)
    model = cls(config).init_weights()  # heads the checkpoint lacks start as transformers' would
    state, source = read_weights(directory)
    matched = match_state_dict(model, state, str(source))
    model.load_state_dict(matched, strict=False)
    model.eval()
    model.checkpoint_dir = directory
    return model


def load_model(name_or_path: str | Path, task: str | None = None, **config_changes: Any) -> PreTrainedModel:
    """The factory: the class comes from config.json (``model_type``, ``architectures``)
    unless ``task`` names one."""
    return load_pretrained(name_or_path, task=task, **config_changes)


def save_pretrained(model: PreTrainedModel, directory: str | Path) -> Path:
    """Write config.json and model.safetensors as transformers writes them (no tied aliases)."""
    directory = Path(directory)
    config = dataclasses.replace(model.config, architectures=[type(model).__name__])
    aliases = model.tied_aliases()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in aliases}
    with atomic_file(directory / SAFETENSORS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    with atomic_file(directory / CONFIG_NAME) as tmp:
        tmp.write_text(config.to_json_string(), encoding="utf-8")
    return directory


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
    from pocketbert.models.tokenizer import read_vocab_file
    from pocketbert.models.vocab import build_vocab

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
    tokenizer = arch.tokenizer_class(vocab, model_max_length=config.max_position_embeddings)
    model = arch.model_class(task or DEFAULT_TASK)(config).init_weights(seed)
    with atomic_directory(out_dir, force=force) as tmp:
        save_pretrained(model, tmp)
        tokenizer.save_pretrained(tmp)
    return model
