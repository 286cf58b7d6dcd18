"""Query lengths of real text, for ``bench --lengths``: what a deployed model is fed.

Sentences people send are 10-40 tokens; a static file pays for its whole length on each.
The lengths come from the input's own tokenizer over a text file (one query per line), by
default the project's English corpus, so a bucketed file and a static one are compared on
the same distribution.
"""

from __future__ import annotations

from pathlib import Path

from pocketbert.errors import PocketbertError

MAX_TOKENS = 512  # BERT's position limit; the harness cuts to what the file takes


def tokenizer_directory(path: Path) -> Path:
    """Where the input's tokenizer lives: a checkpoint or export directory, or the
    directory of a model file (Optimum and our exports keep tokenizer files beside it)."""
    directory = path if path.is_dir() else path.parent
    if not any((directory / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        raise PocketbertError(f"{path}: --lengths needs its tokenizer (tokenizer.json or vocab.txt beside it)")
    return directory


def query_lengths(path: Path, text_file: str | None) -> tuple[int, ...]:
    """Token counts ([CLS] and [SEP] included) of each non-empty line of ``text_file``, or of
    the project corpus, with the input's tokenizer."""
    from pocketbert.models.tokenizer import load_tokenizer
    from pocketbert.models.vocab import corpus_lines
    from pocketbert.textfile import read_text_file

    lines = corpus_lines() if text_file is None else read_text_file(Path(text_file), "--lengths text").splitlines()
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise PocketbertError(f"{text_file}: no text (one query per line)")
    tokenizer = load_tokenizer(tokenizer_directory(path))
    encoded = tokenizer(lines, truncation=True, max_length=MAX_TOKENS)["input_ids"]
    return tuple(len(ids) for ids in encoded)
