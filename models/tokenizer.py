"""The tokenizer of a checkpoint, and every tokenizer class under transformers' names.

The implementation is ``wordpiece.py`` (BERT's WordPiece, one for all four models); each
architecture's class (``MobileBertTokenizerFast`` ...) sits beside its model and the
registry knows which is whose. This module sits above the registry, so it can pick the
class a checkpoint's ``model_type`` calls for, and it keeps the names older code imports
from here (``BertTokenizerFast``, ``TokenizerError``, the file names ...).
"""

from __future__ import annotations

from pathlib import Path

from pocketbert.models.config_base import read_config_dict
from pocketbert.models.hub import resolve
from pocketbert.models.registry import ARCHITECTURES
from pocketbert.models.wordpiece import (  # noqa: F401  (re-exported)
    MAX_CHARS_PER_WORD,
    SPECIAL_ROLES,
    SPECIAL_TOKENS_MAP_NAME,
    TOKENIZER_CONFIG_NAME,
    TOKENIZER_NAME,
    TRUNCATION_STRATEGIES,
    VOCAB_NAME,
    BatchEncoding,
    BertTokenizer,
    BertTokenizerFast,
    TokenizerError,
    read_vocab_file,
)

# MobileBertTokenizerFast, DistilBertTokenizer ...: the docs name a "fast" and a "slow"
# class per model; both are the architecture's class (read from the registry, not listed).
TOKENIZER_CLASSES: dict[str, type[BertTokenizerFast]] = {}
for _arch in ARCHITECTURES.values():
    _name = _arch.tokenizer_class.__name__
    TOKENIZER_CLASSES[_name] = TOKENIZER_CLASSES[_name.removesuffix("Fast")] = _arch.tokenizer_class
globals().update(TOKENIZER_CLASSES)
del _arch, _name


def load_tokenizer(name_or_path: str | Path) -> BertTokenizerFast:
    """The tokenizer of a checkpoint directory, of the class its model_type calls for."""
    directory = resolve(name_or_path)
    arch = ARCHITECTURES.get(read_config_dict(directory).get("model_type"))
    cls = arch.tokenizer_class if arch is not None else BertTokenizerFast
    return cls.from_pretrained(directory)
