"""The config base class: HuggingFace ``config.json`` read and written without losing a field.

Each architecture's config (in its model file, beside the modules it configures) is a
dataclass of the fields its model uses, with transformers' names and defaults (the
defaults are the paper-size models). Every other key of config.json
(dropout rates, ``transformers_version``, ``dtype``, tokenizer ids ...) is kept verbatim in
``extra`` and written back, so ``from_dict(d).to_dict() == d`` for any file transformers
wrote.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pocketbert.errors import ConfigError
from pocketbert.textfile import parse_json

CONFIG_NAME = "config.json"
# config.json key `pocketbert create` writes: these weights are random (a seed), not trained.
# The quality gate judges such files by what random weights can show (quality/gate.py).
RANDOM_WEIGHTS_KEY = "pocketbert_random_weights"


@dataclass
class ModelConfig:
    """Fields every architecture shares; subclasses add their own."""

    model_type: ClassVar[str] = ""
    # config.json keys computed from other fields: dropped on read, recomputed on write.
    derived_keys: ClassVar[tuple[str, ...]] = ()
    # transformers' aliases (DistilBERT's ``dim`` is its ``hidden_size``, ...).
    attribute_map: ClassVar[dict[str, str]] = {}

    vocab_size: int = 30522
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    pad_token_id: int | None = 0
    tie_word_embeddings: bool = True
    architectures: list[str] | None = None
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: resolve transformers' aliases.
        alias = type(self).attribute_map.get(name)
        if alias is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return getattr(self, alias)

    # ---- labels -------------------------------------------------------------------------
    @property
    def num_labels(self) -> int:
        """Classifier width, as transformers derives it from id2label (default 2)."""
        return len(self.id2label) if self.id2label else 2

    def with_labels(self, num_labels: int) -> "ModelConfig":
        """A copy with ``num_labels`` default labels (LABEL_0 ...), as transformers writes them."""
        id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        return dataclasses.replace(
            self, id2label=id2label, label2id={v: k for k, v in id2label.items()}
        )

    @property
    def random_weights(self) -> bool:
        """Made by ``pocketbert create`` (random weights), as its config.json records."""
        return RANDOM_WEIGHTS_KEY in self.extra

    def with_random_weights(self, seed: int) -> "ModelConfig":
        return dataclasses.replace(self, extra={**self.extra, RANDOM_WEIGHTS_KEY: {"seed": seed}})

    # ---- dict / json --------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "extra"]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        data = dict(data)
        model_type = data.pop("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ConfigError(
                f"config has model_type {model_type!r}, expected {cls.model_type!r}"
            )
        for key in cls.derived_keys:
            data.pop(key, None)
        known = {}
        for name in cls.field_names():
            if name in data:
                known[name] = data.pop(name)
        # transformers accepts num_labels on its own (old configs carry it without id2label)
        num_labels = data.pop("num_labels", None)
        if known.get("id2label") is not None:
            labels = known["id2label"]
            if not isinstance(labels, dict) or not all(isinstance(k, (str, int)) and str(k).isdigit() for k in labels):
                raise ConfigError("config field id2label must map label indices (\"0\", \"1\" ...) to names")
            known["id2label"] = {int(k): v for k, v in labels.items()}
        try:
            config = cls(**known, extra=data)
        except TypeError as exc:  # pragma: no cover - dataclass signature errors
            raise ConfigError(f"bad {cls.model_type} config: {exc}") from None
        if num_labels is not None and config.id2label is None:
            _check_field("num_labels", num_labels, int)
            config = config.with_labels(num_labels)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for name in self.field_names():
            value = getattr(self, name)
            if value is None and name in ("architectures", "id2label", "label2id"):
                continue
            if name == "id2label":
                value = {str(k): v for k, v in value.items()}
            out[name] = value
        for key in self.derived_keys:
            out[key] = getattr(self, key)
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json_string(), encoding="utf-8")
        return path

    # ---- checks -------------------------------------------------------------------------
    def validate(self) -> None:
        """Reject configs no model can be built from, naming the field: every field of the
        type its annotation says (a JSON ``NaN``, a string or a boolean where a count
        belongs is a mistake, not a value to cast), counts and sizes >= 1, floats finite,
        epsilons positive, a pad id inside the vocabulary, string labels."""
        hints = typing.get_type_hints(type(self))
        for name in self.field_names():
            _check_field(name, getattr(self, name), hints[name])
        if self.pad_token_id is not None and self.pad_token_id >= self.vocab_size:
            raise ConfigError(f"config field pad_token_id={self.pad_token_id} is outside the vocabulary "
                              f"(vocab_size={self.vocab_size})")
        for key, value in (self.id2label or {}).items():
            if not isinstance(key, int) or not isinstance(value, str):
                raise ConfigError(f"config field id2label maps {key!r} to {value!r}: expected index -> label string")

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (aliases such as num_hidden_layers accepted)."""
        resolved = {type(self).attribute_map.get(k, k): v for k, v in changes.items()}
        config = dataclasses.replace(self, **resolved)
        config.validate()
        return config


def _check_field(name: str, value: Any, annotation: Any) -> None:
    """One field against its annotation (int, float, bool, str, or X | None)."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if value is None:
        if type(None) in options:
            return
        raise ConfigError(f"config field {name} must not be null")
    kind = next((o for o in options if o is not type(None)), annotation)
    kind = typing.get_origin(kind) or kind
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config field {name} must be true or false, got {shown}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config field {name} must be an integer, got {shown}")
        minimum = 0 if name.endswith("_token_id") else 1  # ids start at 0, counts and sizes at 1
        if value < minimum:
            raise ConfigError(f"config field {name} must be >= {minimum}, got {value}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"config field {name} must be a finite number, got {shown}")
        if name.endswith("_eps") and value <= 0:
            raise ConfigError(f"config field {name} must be > 0, got {value}")
        if value < 0 or (name.endswith("dropout") and value > 1):
            raise ConfigError(f"config field {name} is out of range: {value}")
    elif kind in (str, list, dict) and not isinstance(value, kind):
        raise ConfigError(f"config field {name} must be a {'string' if kind is str else kind.__name__}, got {shown}")


def check_divisible(config: ModelConfig, width_field: str, heads_field: str) -> None:
    """Attention splits ``width_field`` into ``heads_field`` heads: it must divide evenly."""
    width, heads = getattr(config, width_field), getattr(config, heads_field)
    if heads <= 0 or width % heads:
        raise ConfigError(f"{width_field}={width} is not a multiple of {heads_field}={heads}")


def read_config_dict(directory: str | Path) -> dict[str, Any]:
    """The raw config.json of a checkpoint directory, or a one-line ConfigError."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{path}: no config.json (not a checkpoint directory)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    data = parse_json(text, str(path), ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def parse_config(config_class: type[ModelConfig], data: dict[str, Any], source: str) -> ModelConfig:
    """``config_class.from_dict`` with the file it came from in the error message."""
    try:
        return config_class.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
