"""config.json -> the config class its ``model_type`` names.

The config classes themselves live beside their models (``BertConfig`` in ``bert.py`` ...)
and their shared base in ``config_base.py``; this module sits above the registry, so it can
map a model_type to its class. It also keeps every name older code imports from here
(``BertConfig`` ..., ``ModelConfig``, ``CONFIG_NAME``, ``load_config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pocketbert.errors import ConfigError
from pocketbert.models.config_base import (  # noqa: F401  (re-exported)
    CONFIG_NAME,
    ModelConfig,
    check_divisible,
    parse_config,
    read_config_dict,
)
from pocketbert.models.registry import ARCHITECTURES

CONFIG_CLASSES: dict[str, type[ModelConfig]] = {name: arch.config_class for name, arch in ARCHITECTURES.items()}
globals().update({cls.__name__: cls for cls in CONFIG_CLASSES.values()})  # BertConfig, MobileBertConfig ...


def config_from_dict(data: dict[str, Any], source: str = "config") -> ModelConfig:
    model_type = data.get("model_type")
    if model_type not in CONFIG_CLASSES:
        known = ", ".join(sorted(CONFIG_CLASSES))
        raise ConfigError(f"{source}: unknown model_type {model_type!r} (known: {known})")
    return parse_config(CONFIG_CLASSES[model_type], data, source)


def load_config(directory: str | Path) -> ModelConfig:
    """Read ``directory/config.json`` into the config class its model_type names."""
    return config_from_dict(read_config_dict(directory), str(Path(directory) / CONFIG_NAME))
