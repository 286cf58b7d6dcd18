"""Model configs that read and write HuggingFace ``config.json`` without losing a field.

Each config is a dataclass of the fields its model uses, with transformers' names and
defaults (the defaults are the paper-size models). Every other key of config.json
(dropout rates, ``transformers_version``, ``dtype``, tokenizer ids ...) is kept verbatim in
``extra`` and written back, so ``from_dict(d).to_dict() == d`` for any file transformers
wrote.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pocketbert.errors import ConfigError

CONFIG_NAME = "config.json"


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
            known["id2label"] = {int(k): v for k, v in known["id2label"].items()}
        try:
            config = cls(**known, extra=data)
        except TypeError as exc:  # pragma: no cover - dataclass signature errors
            raise ConfigError(f"bad {cls.model_type} config: {exc}") from None
        if num_labels is not None and config.id2label is None:
            config = config.with_labels(int(num_labels))
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
        """Reject configs no model can be built from, naming the field."""
        for name in self.field_names():
            value = getattr(self, name)
            if name.startswith("num_") or name.endswith("_size") or name.endswith("_groups"):
                if isinstance(value, int) and value < 0:
                    raise ConfigError(f"config field {name} must be >= 0, got {value}")

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (aliases such as num_hidden_layers accepted)."""
        resolved = {type(self).attribute_map.get(k, k): v for k, v in changes.items()}
        config = dataclasses.replace(self, **resolved)
        config.validate()
        return config


def _check_divisible(config: ModelConfig, width_field: str, heads_field: str) -> None:
    width, heads = getattr(config, width_field), getattr(config, heads_field)
    if heads <= 0 or width % heads:
        raise ConfigError(f"{width_field}={width} is not a multiple of {heads_field}={heads}")


@dataclass
class BertConfig(ModelConfig):
    """BERT-base (110M params), the baseline every compact-BERT paper compares to."""

    model_type: ClassVar[str] = "bert"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    classifier_dropout: float | None = None

    def validate(self) -> None:
        super().validate()
        _check_divisible(self, "hidden_size", "num_attention_heads")


@dataclass
class MobileBertConfig(BertConfig):
    """MobileBERT (arXiv 2004.02984): 24 thin bottlenecked layers, 25.3M params."""

    model_type: ClassVar[str] = "mobilebert"
    derived_keys: ClassVar[tuple[str, ...]] = ("true_hidden_size",)

    hidden_size: int = 512
    num_hidden_layers: int = 24
    num_attention_heads: int = 4
    intermediate_size: int = 512
    hidden_act: str = "relu"
    embedding_size: int = 128
    trigram_input: bool = True
    use_bottleneck: bool = True
    intra_bottleneck_size: int = 128
    use_bottleneck_attention: bool = False
    key_query_shared_bottleneck: bool = True
    num_feedforward_networks: int = 4
    normalization_type: str = "no_norm"
    classifier_activation: bool = True

    @property
    def true_hidden_size(self) -> int:
        """Width inside a block: the bottleneck when there is one."""
        return self.intra_bottleneck_size if self.use_bottleneck else self.hidden_size

    def validate(self) -> None:
        ModelConfig.validate(self)
        if self.normalization_type not in ("no_norm", "layer_norm"):
            raise ConfigError(
                f"normalization_type must be 'no_norm' or 'layer_norm', got {self.normalization_type!r}"
            )
        if self.num_feedforward_networks < 1:
            raise ConfigError("num_feedforward_networks must be >= 1")
        _check_divisible(self, "true_hidden_size", "num_attention_heads")
        if (
            self.use_bottleneck
            and not (self.use_bottleneck_attention or self.key_query_shared_bottleneck)
            and self.intra_bottleneck_size != self.hidden_size
        ):
            raise ConfigError(
                "use_bottleneck without use_bottleneck_attention or key_query_shared_bottleneck feeds "
                f"hidden_size={self.hidden_size} states to {self.intra_bottleneck_size}-wide attention "
                "projections (transformers fails on it too)"
            )
        if self.embedding_size > self.hidden_size:
            raise ConfigError(
                f"embedding_size={self.embedding_size} exceeds hidden_size={self.hidden_size}"
            )


@dataclass
class SqueezeBertConfig(BertConfig):
    """SqueezeBERT (arXiv 2006.11316): grouped 1x1 convolutions instead of dense layers."""

    model_type: ClassVar[str] = "squeezebert"

    embedding_size: int = 768
    q_groups: int = 4
    k_groups: int = 4
    v_groups: int = 4
    post_attention_groups: int = 1
    intermediate_groups: int = 4
    output_groups: int = 4

    def validate(self) -> None:
        super().validate()
        if self.embedding_size != self.hidden_size:
            raise ConfigError(
                f"squeezebert needs embedding_size == hidden_size, got {self.embedding_size} "
                f"and {self.hidden_size}"
            )
        widths = {
            "q_groups": (self.hidden_size, self.hidden_size),
            "k_groups": (self.hidden_size, self.hidden_size),
            "v_groups": (self.hidden_size, self.hidden_size),
            "post_attention_groups": (self.hidden_size, self.hidden_size),
            "intermediate_groups": (self.hidden_size, self.intermediate_size),
            "output_groups": (self.intermediate_size, self.hidden_size),
        }
        for name, (cin, cout) in widths.items():
            groups = getattr(self, name)
            if groups < 1 or cin % groups or cout % groups:
                raise ConfigError(f"{name}={groups} must divide {cin} input and {cout} output channels")


@dataclass
class DistilBertConfig(ModelConfig):
    """DistilBERT (arXiv 1910.01108): 6 BERT layers distilled from BERT-base, 66M params."""

    model_type: ClassVar[str] = "distilbert"
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "intermediate_size": "hidden_dim",
        "hidden_act": "activation",
    }

    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 3072
    activation: str = "gelu"

    def validate(self) -> None:
        super().validate()
        _check_divisible(self, "dim", "n_heads")


CONFIG_CLASSES: dict[str, type[ModelConfig]] = {
    cls.model_type: cls
    for cls in (BertConfig, MobileBertConfig, SqueezeBertConfig, DistilBertConfig)
}


def read_config_dict(directory: str | Path) -> dict[str, Any]:
    """The raw config.json of a checkpoint directory, or a one-line ConfigError."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{path}: no config.json (not a checkpoint directory)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def config_from_dict(data: dict[str, Any], source: str = "config") -> ModelConfig:
    model_type = data.get("model_type")
    if model_type not in CONFIG_CLASSES:
        known = ", ".join(sorted(CONFIG_CLASSES))
        raise ConfigError(f"{source}: unknown model_type {model_type!r} (known: {known})")
    try:
        return CONFIG_CLASSES[model_type].from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(directory: str | Path) -> ModelConfig:
    """Read ``directory/config.json`` into the config class its model_type names."""
    return config_from_dict(read_config_dict(directory), str(Path(directory) / CONFIG_NAME))
