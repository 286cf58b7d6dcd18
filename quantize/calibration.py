"""Calibration data: text through the tokenizer into model inputs.

Text comes from a file — one example per line (.txt), JSON lines with a ``text`` field
(.jsonl; ``text_pair`` optional), or TSV with a header that has a ``text`` column (.tsv) —
or, by default, from the project's English corpus (250 sentences, models/data/corpus_en.txt),
for 16-bit activations mixed across lengths (``length_mixed``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.textfile import parse_json, read_text_file, tsv_rows
from pocketbert.models.vocab import corpus_lines


class CalibrationError(PocketbertError):
    pass


def read_texts(path: str | Path | None, what: str = "calibration",
               mixed_lengths: bool = False) -> list[tuple[str, str | None]]:
    """(text, pair) examples from a calibration file (or ``what`` else the file is for),
    or the default corpus, ``length_mixed`` when asked."""
    if path is None:
        lines = corpus_lines()
        return [(line, None) for line in (length_mixed(lines) if mixed_lengths else lines)]
    path = Path(path)
    content = read_text_file(path, f"{what} file", CalibrationError)
    if path.suffix == ".jsonl":
        examples = []
        for number, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            row = parse_json(line, f"{path}:{number}", CalibrationError)
            try:
                text, pair = row["text"], row.get("text_pair")
            except (KeyError, TypeError, AttributeError):
                raise CalibrationError(f"{path}:{number}: expected a JSON object with a 'text' field") from None
            if not isinstance(text, str) or not text.strip() or not isinstance(pair, (str, type(None))):
                raise CalibrationError(f"{path}:{number}: 'text' (and 'text_pair') must be non-empty strings, "
                                       f"got {json.dumps(text)[:40]}")  # not calibrated on "123" or "None"
            examples.append((text, pair))
    elif path.suffix == ".tsv":
        # an empty text cell is skipped, as an empty line of a .txt is
        examples = [(row["text"], row.get("text_pair") or None)
                    for _, row in tsv_rows(content, path, ("text",), CalibrationError) if row["text"].strip()]
    else:
        examples = [(line, None) for line in content.splitlines() if line.strip()]
    if not examples:
        raise CalibrationError(f"{path}: no {what} text in it")
    return examples


def length_mixed(sentences: list[str], every: int = 7) -> list[str]:
    """The sentences with, in every ``every`` of them, one replaced by its first one to three
    words and one by a passage of twelve sentences (past 128 pieces). A corpus of single
    sentences never reaches what a very short text ([CLS]/[SEP] half of the tokens) or a full
    sequence (the pooling's sums over 128 tokens) puts through the graph, and a range fixed
    without them saturates there (all-MiniLM-L6-v2, 16-bit activations: held-out long texts'
    pooled cosine mean 0.972 calibrated on sentences, 0.997 on this mix). The 8-bit recipes
    keep the sentences their floors were measured with: 255 steps stretched to a full
    sequence's range cost every other text resolution."""
    mixed = []
    for index, sentence in enumerate(sentences):
        if index % every == every // 2:
            words = sentence.split()[: 1 + index % 3]
            mixed.append(" ".join(words).rstrip(",.;:") + ".")
        elif index % every == every // 2 + 2:
            mixed.append(" ".join(sentences[(index + k) % len(sentences)] for k in range(12)))
        else:
            mixed.append(sentence)
    return mixed


def calibration_inputs(
    tokenizer, input_names, examples: list[tuple[str, str | None]], max_length: int,
    fixed_length: bool, limit: int = 100, dtype="int64", input_shape=None,
) -> list[dict[str, np.ndarray]]:
    """Batch-1 model inputs for up to ``limit`` examples (the MobileBERT paper calibrated on
    100), padded to ``max_length`` when the graph is static; multiple-choice graphs
    ([1, choices, S]) get each example repeated as every choice."""
    padding = "max_length" if fixed_length else False
    choices = None
    if input_shape is not None and len(input_shape) == 3:
        choices = input_shape[1] if isinstance(input_shape[1], int) else 1
    out = []
    for text, pair in examples[:limit]:
        encoded = tokenizer(text, pair, truncation=True, max_length=max_length, padding=padding, return_tensors="np")
        row = {}
        for name in input_names:
            value = encoded[name].astype(dtype)  # [1, S]
            row[name] = np.repeat(value[:, None, :], choices, axis=1) if choices else value
        out.append(row)
    return out
