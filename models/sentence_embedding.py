"""Sentence embeddings as sentence-transformers makes them: pooling (and L2 normalisation)
over the encoder's token states, read from and written to its checkpoint files.

A sentence-transformers checkpoint is an HF encoder directory plus ``modules.json`` (the
pipeline: Transformer -> Pooling -> optional Normalize) and ``1_Pooling/config.json`` (the
pooling modes; older files spell them as ``pooling_mode_*_tokens`` booleans, newer ones as
``pooling_mode``). Putting pooling inside the exported graph spares every app from
re-implementing masked mean pooling; writing the same files back keeps an export directory
loadable by sentence-transformers.

Inputs are right-padded (every pocketbert pipeline pads on the right), so "cls" is
position 0 and "lasttoken" is the last real position. Modules other than these three
(Dense projections, prompts excluded from pooling) are refused at load with one line:
exporting them without their weights would give a different embedding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from pocketbert.errors import CheckpointError
from pocketbert.textfile import parse_json

MODULES_NAME = "modules.json"
POOLING_DIR = "1_Pooling"
NORMALIZE_DIR = "2_Normalize"
SBERT_CONFIG_NAME = "sentence_bert_config.json"

# In the order sentence-transformers concatenates them when several are on.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


@dataclass(frozen=True)
class SentenceEmbeddingSettings:
    """What turns token states into one vector: sentence-transformers' defaults (mean
    pooling, no normalisation) for an encoder directory without its files."""

    pooling: tuple[str, ...] = ("mean",)
    normalize: bool = False
    max_seq_length: int | None = None  # sentence-transformers truncates here (256 for MiniLM)
    from_files: bool = field(default=False, compare=False)  # read from modules.json, or defaulted

    def __post_init__(self) -> None:
        unknown = [mode for mode in self.pooling if mode not in POOLING_MODES]
        if unknown or not self.pooling:
            raise CheckpointError(f"pooling mode {unknown[0] if unknown else '(none)'!r} is not one of {', '.join(POOLING_MODES)}")

    def to_dict(self) -> dict:
        return {"pooling": list(self.pooling), "normalize": self.normalize, "max_seq_length": self.max_seq_length}


def _read_json(path: Path) -> dict | list:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not readable ({exc})") from None
    return parse_json(text, str(path), CheckpointError)


def _pooling_modes(config: dict, path: Path) -> tuple[str, ...]:
    if "pooling_mode" in config:
        value = config["pooling_mode"]
        modes = (value,) if isinstance(value, str) else tuple(value)
    else:
        modes = tuple(mode for key, mode in _LEGACY_KEYS.items() if config.get(key))
    if config.get("include_prompt", True) is not True:
        raise CheckpointError(f"{path}: include_prompt=false (prompts left out of pooling) is not supported")
    modes = modes or ("mean",)  # sentence-transformers' default when no mode is on
    order = {mode: i for i, mode in enumerate(POOLING_MODES)}
    if any(mode not in order for mode in modes):
        raise CheckpointError(f"{path}: unknown pooling mode in {list(modes)} (known: {', '.join(POOLING_MODES)})")
    return tuple(sorted(modes, key=order.__getitem__))


def read_settings(directory: str | Path) -> SentenceEmbeddingSettings:
    """The pooling of a checkpoint directory: from its sentence-transformers files, else
    the defaults. A module we cannot reproduce is an error, not a silent difference."""
    directory = Path(directory)
    modules_path = directory / MODULES_NAME
    if not modules_path.is_file():
        return SentenceEmbeddingSettings()
    modules = _read_json(modules_path)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and isinstance(m.get("type"), str) for m in modules):
        raise CheckpointError(f"{modules_path}: not a list of modules with a type")
    pooling, normalize = ("mean",), False
    for module in modules:
        kind = module["type"].rsplit(".", 1)[-1]
        if kind == "Transformer" and module.get("path", "") in ("", "."):
            continue
        if kind == "Pooling":
            config = _read_json(directory / str(module.get("path", POOLING_DIR)) / "config.json")
            pooling = _pooling_modes(config if isinstance(config, dict) else {}, modules_path)
        elif kind == "Normalize":
            normalize = True
        else:
            raise CheckpointError(f"{modules_path}: module {module['type']} ({module.get('path')}) is not supported "
                                  "(pocketbert exports Transformer, Pooling and Normalize)")
    max_seq_length = None
    if (directory / SBERT_CONFIG_NAME).is_file():
        value = _read_json(directory / SBERT_CONFIG_NAME)
        value = value.get("max_seq_length") if isinstance(value, dict) else None
        max_seq_length = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    return SentenceEmbeddingSettings(pooling, normalize, max_seq_length, from_files=True)


def settings_files(settings: SentenceEmbeddingSettings, hidden_size: int) -> dict[str, str]:
    """The files sentence-transformers reads, {relative path: text}, so that a directory
    pocketbert writes loads there (and back here) with the same pooling."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": POOLING_DIR, "type": "sentence_transformers.models.Pooling"}]
    if settings.normalize:
        modules.append({"idx": 2, "name": "2", "path": NORMALIZE_DIR, "type": "sentence_transformers.models.Normalize"})
    pooling = {"word_embedding_dimension": hidden_size,
               **{key: mode in settings.pooling for key, mode in _LEGACY_KEYS.items()}, "include_prompt": True}
    files = {MODULES_NAME: json.dumps(modules, indent=2), f"{POOLING_DIR}/config.json": json.dumps(pooling, indent=2)}
    if settings.max_seq_length is not None:
        files[SBERT_CONFIG_NAME] = json.dumps({"max_seq_length": settings.max_seq_length, "do_lower_case": False}, indent=2)
    return files


class SentencePooling(nn.Module):
    """[B, S, H] token states + [B, S] mask -> [B, H * len(modes)], L2-normalised if asked.

    Written for the graphs phones run: no gather (position 0 is a slice, the last token a
    one-hot weighted sum), no -inf (max uses a large negative fill), float math only.
    """

    def __init__(self, settings: SentenceEmbeddingSettings):
        super().__init__()
        self.settings = settings

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long)
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # [B, S, 1]
        count = mask.sum(1).clamp(min=1e-9)  # [B, 1] real tokens
        vectors = []
        for mode in self.settings.pooling:
            if mode == "cls":
                vectors.append(hidden[:, 0])
            elif mode == "max":
                vectors.append((hidden + (mask - 1.0) * 1e9).amax(1))  # pads at -1e9
            elif mode == "mean":
                vectors.append((hidden * mask).sum(1) / count)
            elif mode == "mean_sqrt_len_tokens":
                vectors.append((hidden * mask).sum(1) / count.sqrt())
            elif mode == "weightedmean":
                positions = torch.cumsum(torch.ones_like(mask), 1)  # [B, S, 1]: 1, 2, ... S
                weights = mask * positions
                vectors.append((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9))
            else:  # lasttoken: the last real position of a right-padded row
                positions = torch.cumsum(torch.ones_like(mask), 1)
                last = (positions == count.unsqueeze(1)).to(hidden.dtype) * mask  # [B, S, 1] one-hot
                vectors.append((hidden * last).sum(1))
        pooled = vectors[0] if len(vectors) == 1 else torch.cat(vectors, -1)  # [B, H * modes]
        if self.settings.normalize:
            norm = pooled.pow(2).sum(-1, keepdim=True).sqrt().clamp(min=1e-12)
            pooled = pooled / norm
        return pooled
