"""The single list of what exists: architectures, their tasks and their classes.

The CLI, the tests and the docs read this; nothing else lists architectures or tasks.
Each architecture carries its paper, the parameter count the paper reports (the default
config must land in that range), and a tiny ``fake`` config for unit tests (litert-torch's
habit), 2 layers but every option of the full model switched on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pocketbert.errors import PocketbertError
from pocketbert.models import bert, distilbert, mobilebert, squeezebert
from pocketbert.models.configs import (
    BertConfig,
    DistilBertConfig,
    MobileBertConfig,
    ModelConfig,
    SqueezeBertConfig,
)
from pocketbert.models.modeling import PreTrainedModel
from pocketbert.models.tokenizer import (
    BertTokenizerFast,
    DistilBertTokenizerFast,
    MobileBertTokenizerFast,
    SqueezeBertTokenizerFast,
)

# Every task any architecture has, in the order docs list them.
TASKS = (
    "feature-extraction",
    "fill-mask",
    "pretraining",
    "next-sentence-prediction",
    "text-classification",
    "multiple-choice",
    "token-classification",
    "question-answering",
)
DEFAULT_TASK = "fill-mask"


@dataclass(frozen=True)
class Architecture:
    name: str  # == config.json model_type
    config_class: type[ModelConfig]
    tasks: dict[str, type[PreTrainedModel]]
    paper: str
    paper_params_millions: tuple[float, float]  # the range the default config must land in
    tokenizer_class: type[BertTokenizerFast]
    fake: dict[str, Any] = field(default_factory=dict)  # tiny-config overrides for tests

    def default_config(self) -> ModelConfig:
        """The paper-size configuration (transformers' defaults)."""
        return self.config_class()

    def fake_config(self, **changes: Any) -> ModelConfig:
        return self.config_class().replace(**{**self.fake, **changes})

    def model_class(self, task: str) -> type[PreTrainedModel]:
        if task not in self.tasks:
            raise PocketbertError(
                f"{self.name} has no task {task!r} (it has: {', '.join(self.tasks)})"
            )
        return self.tasks[task]


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            name="mobilebert",
            config_class=MobileBertConfig,
            tasks=mobilebert.TASK_CLASSES,
            paper="MobileBERT, arXiv 2004.02984",
            paper_params_millions=(24.6, 25.3),
            tokenizer_class=MobileBertTokenizerFast,
            fake=dict(
                vocab_size=1000, hidden_size=64, embedding_size=32, intra_bottleneck_size=32,
                intermediate_size=48, num_attention_heads=4, num_hidden_layers=2,
                num_feedforward_networks=2, max_position_embeddings=128,
            ),
        ),
        Architecture(
            name="squeezebert",
            config_class=SqueezeBertConfig,
            tasks=squeezebert.TASK_CLASSES,
            paper="SqueezeBERT, arXiv 2006.11316",
            paper_params_millions=(50.6, 51.6),
            tokenizer_class=SqueezeBertTokenizerFast,
            fake=dict(
                vocab_size=1000, hidden_size=64, embedding_size=64, intermediate_size=128,
                num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=128,
            ),
        ),
        Architecture(
            name="distilbert",
            config_class=DistilBertConfig,
            tasks=distilbert.TASK_CLASSES,
            paper="DistilBERT, arXiv 1910.01108",
            paper_params_millions=(66.0, 67.0),
            tokenizer_class=DistilBertTokenizerFast,
            fake=dict(vocab_size=1000, dim=64, hidden_dim=128, n_heads=4, n_layers=2, max_position_embeddings=128),
        ),
        Architecture(
            name="bert",
            config_class=BertConfig,
            tasks=bert.TASK_CLASSES,
            paper="BERT, arXiv 1810.04805",
            paper_params_millions=(109.0, 110.5),
            tokenizer_class=BertTokenizerFast,
            fake=dict(
                vocab_size=1000, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                num_hidden_layers=2, max_position_embeddings=128,
            ),
        ),
    )
}

CLASSES_BY_NAME: dict[str, type[PreTrainedModel]] = {
    cls.__name__: cls for arch in ARCHITECTURES.values() for cls in arch.tasks.values()
}


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise PocketbertError(
            f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})"
        )
    return ARCHITECTURES[name]


def class_for_config(config: ModelConfig, task: str | None = None) -> type[PreTrainedModel]:
    """The class to build for a checkpoint: the task asked for, else the class its
    config.json names in ``architectures``, else the bare model."""
    arch = get_architecture(config.model_type)
    if task is not None:
        return arch.model_class(task)
    for name in config.architectures or ():
        cls = CLASSES_BY_NAME.get(name)
        if cls is not None and cls.config_class is arch.config_class:
            return cls
    return arch.tasks["feature-extraction"]


def all_pairs() -> list[tuple[str, str]]:
    """Every registered (architecture, task)."""
    return [(arch.name, task) for arch in ARCHITECTURES.values() for task in arch.tasks]
