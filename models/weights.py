"""Weights files in transformers' format: read, check against a model, write.

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

This module sits below ``modeling`` (whose ``from_pretrained`` uses it), so it knows models
only by what every ``PreTrainedModel`` offers: ``config``, ``base_model_prefix``,
``task_space_prefix``, ``tied_aliases()``, ``architecture_classes()`` and ``state_dict()``.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pocketbert.atomic import atomic_file
from pocketbert.errors import CheckpointError, PocketbertError, first_line
from pocketbert.paths import confined
from pocketbert.textfile import parse_json
from pocketbert.models.config_base import CONFIG_NAME

SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_NAME = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"
IGNORED_BUFFERS = ("position_ids", "embeddings.token_type_ids")


class CheckpointWarning(UserWarning):
    """A checkpoint loaded, but not every weight came from it (or was used)."""


# ---- reading ------------------------------------------------------------------------------
def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except Exception as exc:  # safetensors raises SafetensorError, OSError, ValueError ...
        raise CheckpointError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None


def _read_torch_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        # weights_only: a pickle can run code; only tensors and plain containers are allowed
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):  # not torch's advice to load it unsafely
            found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", str(exc))
            culprit = f": it pickles {found.group(1)}" if found else ""
            raise CheckpointError(f"{path}: holds objects other than tensors{culprit}; pocketbert loads weights "
                                  "only (a pickle can run code). Convert it to safetensors where you trust it") from None
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({first_line(exc)})") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({first_line(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: does not hold a state dict of tensors")
    return state


def _read_index(index: Path, reader) -> dict[str, torch.Tensor]:
    try:
        weight_map = parse_json(index.read_text(encoding="utf-8"), str(index), CheckpointError)["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index}: not a valid shard index ({first_line(exc)})") from None
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index}: weight_map is not an object")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(map(str, weight_map.values()))):
        try:
            shard_path = confined(index.parent, shard, str(index))
        except PocketbertError as exc:
            raise CheckpointError(str(exc)) from None
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


def is_checkpoint(directory: str | Path) -> bool:
    """A config.json beside weights read_weights would read: a model's own files."""
    directory = Path(directory)
    return (directory / CONFIG_NAME).is_file() and any(
        (directory / name).is_file() for name in (SAFETENSORS_NAME, SAFETENSORS_INDEX, TORCH_NAME, TORCH_INDEX))


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


def _task_space(model, state: dict[str, Any]) -> dict[str, Any]:
    return {model.task_space_prefix + k: v for k, v in state.items()}


def _known_keys(model) -> set[str]:
    """Every key any class of the model's architecture has, in task space (built on the
    meta device: no memory, no initialisation)."""
    keys: set[str] = set()
    for cls in model.architecture_classes():
        with torch.device("meta"):
            sibling = cls(model.config)
        keys |= set(_task_space(sibling, sibling.state_dict()))
    return keys


def _listing(keys: set[str]) -> str:
    first, *rest = sorted(keys)
    return first + (f" (and {len(rest)} more)" if rest else "")


def untrained_part(missing, prefix: str) -> str:
    """'the head' or 'the pooler' (or both) for a list of newly initialised keys."""
    pooler = any(k.startswith(prefix + "pooler.") for k in missing)
    head = any(not k.startswith(prefix) for k in missing)
    return " and ".join(part for part, on in (("the head", head), ("the pooler", pooler)) if on) or "a part"


def _check_values(key: str, tensor: torch.Tensor, expected: torch.Tensor, source: str) -> None:
    """Weights that are not weights: integers or booleans where the model keeps floats (cast,
    they make a model that outputs constants) and NaN or infinite values (which every output
    inherits, and which JSON cannot even print)."""
    if expected.is_floating_point() and not tensor.is_floating_point():
        raise CheckpointError(f"{source}: weight {key} holds {str(tensor.dtype).removeprefix('torch.')} values, "
                              "not floating-point weights")
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise CheckpointError(f"{source}: weight {key} has {bad} NaN or infinite value{'s' if bad > 1 else ''}")


def match_state_dict(model, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
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
    on_purpose = tuple(prefix + part for part in model.unused_on_purpose)
    unexpected = {k for k in unexpected if not k.startswith(on_purpose)} if on_purpose else unexpected
    unknown = unexpected - _known_keys(model) if unexpected else set()
    if unknown:
        raise CheckpointError(
            f"{source}: unexpected weight {_listing(unknown)} (not part of any {model.config.model_type} model)"
        )
    for key in sorted(expected.keys() & ckpt.keys()):
        want, got = tuple(expected[key].shape), tuple(ckpt[key].shape)
        if want != got:
            raise CheckpointError(f"{source}: weight {key} has shape {got}, {type(model).__name__} expects {want}")
        _check_values(key, ckpt[key], expected[key], source)

    name = type(model).__name__
    model.untrained_weights = sorted(missing)  # the manifest and ``run`` report these
    if missing:
        warnings.warn(
            f"{source}: {name} weights not in the checkpoint, newly initialised: {_listing(missing)} "
            f"({untrained_part(missing, prefix)} is untrained: its outputs are random)",
            CheckpointWarning,
            stacklevel=3,
        )
    if unexpected:
        warnings.warn(
            f"{source}: checkpoint weights {name} does not use (another head): {_listing(unexpected)}",
            CheckpointWarning,
            stacklevel=3,
        )
    strip = len(model.task_space_prefix)
    return {k[strip:]: ckpt[k] for k in expected.keys() & ckpt.keys()}


def load_weights(model, directory: str | Path):
    """Fill ``model`` (already initialised) from the weights of ``directory``; eval mode."""
    state, source = read_weights(directory)
    model.load_state_dict(match_state_dict(model, state, str(source)), strict=False)
    model.eval()
    model.checkpoint_dir = Path(directory)
    return model


# ---- writing --------------------------------------------------------------------------------
def save_pretrained(model, directory: str | Path) -> Path:
    """Write config.json and model.safetensors as transformers writes them (no tied aliases)."""
    directory = Path(directory)
    config = dataclasses.replace(model.config, architectures=[type(model).__name__])
    aliases = model.tied_aliases()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in aliases}
    with atomic_file(directory / SAFETENSORS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    with atomic_file(directory / CONFIG_NAME) as tmp:
        tmp.write_text(config.to_json_string(), encoding="utf-8")
    write_task_files(model, directory)
    return directory


def write_task_files(model, directory: Path) -> list[str]:
    """The model's ``task_files()`` (sentence-transformers' pooling files ...) into ``directory``."""
    written = []
    for name, text in model.task_files().items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(directory / name) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
        written.append(name)
    return written
