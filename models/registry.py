"""The single list of what exists: architectures, their tasks and their classes.

The CLI, the tests, the FLOP counter and the docs read this; nothing else lists
architectures. Each model file describes itself in its ``ARCHITECTURE`` entry (see
``architecture.py``); adding an architecture is adding its module to ``MODULES``.
"""

from __future__ import annotations

from torch import nn

from pocketbert.errors import PocketbertError
from pocketbert.models import bert, distilbert, mobilebert, squeezebert, tasks
from pocketbert.models.architecture import Architecture
from pocketbert.models.config_base import ModelConfig
from pocketbert.models.modeling import PreTrainedModel

# In the order the docs list them: the compact models, then their baseline.
MODULES = (mobilebert, squeezebert, distilbert, bert)

# Every task any architecture has, in the order docs list them (the entries: ``tasks.py``).
TASKS = tuple(task.name for task in tasks.TASKS)
DEFAULT_TASK = tasks.DEFAULT_TASK.name

ARCHITECTURES: dict[str, Architecture] = {module.ARCHITECTURE.name: module.ARCHITECTURE for module in MODULES}

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
    return arch.tasks[tasks.FEATURE_EXTRACTION.name]


def all_pairs() -> list[tuple[str, str]]:
    """Every registered (architecture, task)."""
    return [(arch.name, task) for arch in ARCHITECTURES.values() for task in arch.tasks]


def transformers_pairs() -> list[tuple[str, str]]:
    """The (architecture, task) pairs whose class transformers has under the same name."""
    return [(a, t) for a, t in all_pairs() if get_architecture(a).model_class(t).in_transformers]


def ffn_output_linears(model: PreTrainedModel) -> list[str]:
    """The paths of ``model``'s declared FFN outputs (its architecture's ``ffn_outputs``) that
    are Linears: what the int8 recipes with float_outliers keep float in the formats that
    quantize Linears (SqueezeBERT's are 1x1 convolutions)."""
    paths = get_architecture(model.config.model_type).ffn_output_modules(model)
    modules = dict(model.named_modules())
    return [path for path in paths if isinstance(modules[path], nn.Linear)]
