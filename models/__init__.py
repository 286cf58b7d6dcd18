"""Reference PyTorch models whose state dicts are transformers' own, configs, checkpoint I/O.

>>> from pocketbert.models import MobileBertForMaskedLM, load_model
>>> model = load_model("path/to/checkpoint", task="fill-mask")
"""

from pocketbert.models.checkpoint import create_checkpoint, load_model, save_pretrained  # noqa: F401
from pocketbert.models.configs import (  # noqa: F401
    BertConfig,
    DistilBertConfig,
    MobileBertConfig,
    ModelConfig,
    SqueezeBertConfig,
    load_config,
)
from pocketbert.models.registry import ARCHITECTURES, CLASSES_BY_NAME, TASKS, get_architecture  # noqa: F401

globals().update(CLASSES_BY_NAME)  # MobileBertModel, DistilBertForMaskedLM, ... by their names
__all__ = sorted(
    list(CLASSES_BY_NAME)
    + ["ARCHITECTURES", "TASKS", "create_checkpoint", "get_architecture", "load_config", "load_model"]
    + ["BertConfig", "DistilBertConfig", "MobileBertConfig", "ModelConfig", "SqueezeBertConfig"]
)
