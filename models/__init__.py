"""Reference PyTorch models whose state dicts are transformers' own, configs, checkpoint I/O.

>>> from pocketbert.models import MobileBertForMaskedLM, load_model
>>> model = load_model("path/to/checkpoint", task="fill-mask")

Each architecture is one module (``mobilebert.py`` ...: config, modules, tokenizer class,
FLOP count, ``ARCHITECTURE`` entry); ``registry.py`` collects them.
"""

from pocketbert.models.checkpoint import create_checkpoint, load_model, save_pretrained  # noqa: F401
from pocketbert.models.config_base import ModelConfig  # noqa: F401
from pocketbert.models.configs import CONFIG_CLASSES, load_config  # noqa: F401
from pocketbert.models.registry import ARCHITECTURES, CLASSES_BY_NAME, TASKS, get_architecture  # noqa: F401

_CONFIGS_BY_NAME = {cls.__name__: cls for cls in CONFIG_CLASSES.values()}
globals().update(CLASSES_BY_NAME)  # MobileBertModel, DistilBertForMaskedLM, ... by their names
globals().update(_CONFIGS_BY_NAME)  # BertConfig, MobileBertConfig, ...
__all__ = sorted(
    list(CLASSES_BY_NAME)
    + list(_CONFIGS_BY_NAME)
    + ["ARCHITECTURES", "TASKS", "create_checkpoint", "get_architecture", "load_config", "load_model", "ModelConfig"]
)
