"""What one architecture is, as the rest of pocketbert sees it: an ``Architecture`` entry.

Each model file ends with ``ARCHITECTURE = Architecture(...)``: its backbone (from which
the config class, the model_type and the task classes follow), the paper, the parameter
count the paper reports (the default config must land in that range), a tiny ``fake``
config for unit tests (litert-torch's habit: 2 layers, every option of the full model
switched on), the tokenizer class, and the function counting its encoder's FLOPs with the
figures the papers quote. ``registry.py`` only collects the entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from pocketbert.errors import PocketbertError
from pocketbert.models.config_base import ModelConfig
from pocketbert.models.modeling import Backbone, PreTrainedModel, TaskModel
from pocketbert.models.wordpiece import BertTokenizerFast


class FlopCounter(Protocol):
    """What an architecture's FLOP function reports its matrix products to
    (``pocketbert.benchmarks.flops`` passes its counter; models do not import benchmarks)."""

    def linear(self, part: str, rows: int, d_in: int, d_out: int, groups: int = 1) -> None:
        """``rows`` vectors through a d_in -> d_out Linear (or 1x1 Conv1d with ``groups``)."""

    def attention(self, sequences: int, seq_len: int, width: int, queries: int | None = None) -> None:
        """QK^T and PV over all heads of ``width`` channels, for ``sequences`` sequences of
        ``seq_len`` keys and ``queries`` query rows (default: ``seq_len``)."""


# count(counter, config, batch, seq_len, first_token_only): the embeddings and layers, no
# pooler or head; first_token_only as the task model's reads_first_token_only
EncoderFlops = Callable[[FlopCounter, ModelConfig, int, int, bool], None]


@dataclass(frozen=True)
class Architecture:
    backbone: type[Backbone]
    paper: str
    paper_params_millions: tuple[float, float]  # the range the default config must land in
    tokenizer_class: type[BertTokenizerFast]
    count_encoder_flops: EncoderFlops
    # Module paths in the backbone of every feed-forward block's output projection, "*" for a
    # layer (or FFN) index. They carry a trained BERT's outlier channels (weights 18-44x their
    # 99.9th percentile, outputs near 200 against an RMS of 0.8; Bondarenko et al., EMNLP
    # 2021), which int8 recipes with float_outliers keep float: declared, so a model that
    # names its layers otherwise cannot silently lose that protection.
    ffn_outputs: tuple[str, ...]
    # backbone GFLOPs at sequence length 128, batch 1, as papers quote them: {source: G}
    paper_gflops: dict[str, float] = field(default_factory=dict)
    fake: dict[str, Any] = field(default_factory=dict)  # tiny-config overrides for tests
    # derived from the backbone, so the entry cannot disagree with the modules
    name: str = field(init=False)  # == config.json model_type
    config_class: type[ModelConfig] = field(init=False)
    tasks: dict[str, type[PreTrainedModel]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config_class", self.backbone.config_class)
        object.__setattr__(self, "name", self.backbone.config_class.model_type)
        object.__setattr__(self, "tasks", self.backbone.classes_by_task())

    def default_config(self) -> ModelConfig:
        """The paper-size configuration (transformers' defaults)."""
        return self.config_class()

    def fake_config(self, **changes: Any) -> ModelConfig:
        return self.config_class().replace(**{**self.fake, **changes})

    def ffn_output_modules(self, model: PreTrainedModel) -> list[str]:
        """Paths in ``model`` (the backbone, or a task model around it) of the declared FFN
        outputs, in module order. One declaration may match nothing (MobileBERT with
        num_feedforward_networks=1 has no ``ffn.*`` stack); all of them matching nothing is
        an error, not an empty list."""
        backbone = model.backbone if isinstance(model, TaskModel) else model
        prefix = f"{model.base_model_prefix}." if backbone is not model else ""
        names = [name for name, _ in backbone.named_modules()]
        found = set()
        for pattern in self.ffn_outputs:
            regex = re.compile(re.escape(pattern).replace(r"\*", r"\d+"))
            found |= {name for name in names if regex.fullmatch(name)}
        if not found:
            declared = ", ".join(repr(p) for p in self.ffn_outputs)
            raise PocketbertError(f"{self.name}: the declared FFN outputs ({declared}) match no module of "
                                  f"{type(model).__name__}")
        return [prefix + name for name in names if name in found]

    def model_class(self, task: str) -> type[PreTrainedModel]:
        if task not in self.tasks:
            raise PocketbertError(
                f"{self.name} has no task {task!r} (it has: {', '.join(self.tasks)})"
            )
        return self.tasks[task]
