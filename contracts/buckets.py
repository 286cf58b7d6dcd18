"""Sequence buckets: one file, one static entry point per length (seq_16, seq_32 ...): a
.tflite's signatures, a .pte's methods.

Static shapes are what LiteRT's delegates and XNNPACK want, but one static length makes a
12-token sentence pay for 128. A bucketed file keeps the weights once and an entry point per
length; a sentence is padded (ids 0, mask 0) to the smallest bucket that holds it, and
outputs with a sequence axis are cut back to the sentence's length. The android_demo does
the same.
"""

from __future__ import annotations

import re

import numpy as np

from pocketbert.contracts.runner import RunnerError

BUCKET_PREFIX = "seq_"
_BUCKET = re.compile(rf"{BUCKET_PREFIX}(\d+)$")


def bucket_signature(length: int) -> str:
    return f"{BUCKET_PREFIX}{length}"


def bucket_lengths(signature_names) -> tuple[int, ...]:
    """The lengths of a bucketed file's signatures (methods); () unless every one is a bucket."""
    found = [_BUCKET.match(name) for name in signature_names]
    if len(found) < 2 or not all(found):
        return ()
    return tuple(sorted(int(m.group(1)) for m in found))


def pick(buckets: tuple[int, ...], length: int, file: str = "this file") -> int:
    for bucket in buckets:
        if bucket >= length:
            return bucket
    raise RunnerError(f"{length} tokens: {file} takes at most {buckets[-1]} (its buckets: "
                      f"{', '.join(map(str, buckets))})")


def padded(value: np.ndarray, length: int) -> np.ndarray:
    """Right-padded with zeros to ``length`` on the last axis (pad id, mask 0, segment 0)."""
    missing = length - value.shape[-1]
    if missing <= 0:
        return value
    return np.pad(value, [(0, 0)] * (value.ndim - 1) + [(0, missing)])


def sequence_axes(shorter: dict, longer: dict) -> dict[str, int]:
    """Per output, the axis that grows with the bucket (start_logits: 1; logits of a
    classifier: none), from two buckets' output details ({name: {"shape": ...}})."""
    axes = {}
    for name, details in longer.items():
        grown = [axis for axis, (a, b) in enumerate(zip(shorter[name]["shape"], details["shape"])) if a != b]
        if grown:
            axes[name] = grown[0]
    return axes


def trimmed(value: np.ndarray, axis: int | None, length: int) -> np.ndarray:
    if axis is None:
        return value
    return np.take(value, np.arange(length), axis=axis)
