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
    """The tokenizer of a checkpoint directory, of the class its model_type calls for.

    A vocabulary larger than the config's ``vocab_size`` is refused here: its extra ids
    would index past the embedding table (an index error in PyTorch, garbage on a phone).
    """
    directory = resolve(name_or_path)
    config = read_config_dict(directory)
    arch = ARCHITECTURES.get(config.get("model_type"))
    cls = arch.tokenizer_class if arch is not None else BertTokenizerFast
    tokenizer = cls.from_pretrained(directory)
    vocab_size = config.get("vocab_size")
    largest = max(tokenizer.get_vocab().values(), default=-1)
    if isinstance(vocab_size, int) and largest >= vocab_size:
        raise TokenizerError(
            f"{directory}: the tokenizer has ids up to {largest}, but config.json's vocab_size is {vocab_size} "
            "(the tokenizer belongs to another model)"
        )
    return tokenizer


def vocabulary_text(directory: str | Path) -> str | None:
    """The checkpoint's vocab.txt (one token per line, line = id): the file itself, or for
    a checkpoint that ships only tokenizer.json (sentence-transformers' zips, many hub
    repos) its WordPiece vocabulary written out, which the TFLite metadata, the Android
    assets and the Java tokenizer read. None when the checkpoint has no tokenizer."""
    directory = Path(directory)
    if (directory / VOCAB_NAME).is_file():
        return (directory / VOCAB_NAME).read_text(encoding="utf-8")
    if not (directory / TOKENIZER_NAME).is_file():
        return None
    by_id = {i: token for token, i in load_tokenizer(directory).get_vocab().items()}
    if sorted(by_id) != list(range(len(by_id))):
        raise TokenizerError(f"{directory / TOKENIZER_NAME}: token ids have gaps, no vocab.txt can list them")
    return "".join(by_id[i] + "\n" for i in range(len(by_id)))
