"""LayerNorm in ops that LiteRT's 16-bit integer kernels run.

litert-torch lowers layer norm to MEAN / SQUARED_DIFFERENCE / RSQRT ..., and LiteRT's
SQUARED_DIFFERENCE runs float32 and int32 only ("SquaredDifference only supports FLOAT32 and
INT32", tried with int16): the 16-bit-activation file (the NPU recipe) kept every LayerNorm's
variance in float, 13 float islands with 26 DEQUANTIZE/QUANTIZE around them
(all-MiniLM-L6-v2), so it was not integer end to end. While an ``--accelerator npu``
conversion traces the model, layer norm is computed with the variance as MEAN(centred *
centred), one MUL, which the integer recipes quantize; the arithmetic is the same in float
(2e-7 apart), and the modules (so the tensor names the quantizer's exclusions match) stay
``nn.LayerNorm``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.nn import functional


def layer_norm(x: torch.Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> torch.Tensor:
    axes = tuple(range(-len(normalized_shape), 0))
    centred = x - x.mean(axes, keepdim=True)  # [..., *normalized_shape]
    variance = (centred * centred).mean(axes, keepdim=True)  # [..., 1 ...]
    out = centred * torch.rsqrt(variance + eps)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


@contextmanager
def integer_layer_norms() -> Iterator[None]:
    """``nn.LayerNorm`` (and subclasses: SqueezeBERT's channel-axis norm) compute with
    ``layer_norm`` above while the block runs."""
    original = functional.layer_norm
    functional.layer_norm = layer_norm
    try:
        yield
    finally:
        functional.layer_norm = original
