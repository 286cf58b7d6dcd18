"""The integer file's arithmetic, emulated in PyTorch so that training can see it.

A full-integer LiteRT file (ai-edge-quantizer's static recipes with every op quantized)
stores every op's output at its own per-tensor scale: int8 asymmetric (or int16 symmetric)
activations, per-output-channel symmetric int8 weights, softmax at the fixed 1/256 scale.
``IntegerEmulation`` gives the PyTorch model the same rounding: a torch-function mode that
fake-quantizes the output of every op that computes values (not the layout ops, which LiteRT
runs at their input's scale) and each FULLY_CONNECTED / CONV weight per channel. The sites
are the ops in call order: the graph of one sequence length is the same every forward.

Ranges follow the calibration the file gets (``formats/tflite/ranges.py``): per example
min/max, averaged (8 bits) or the extremes (16 bits); the masked-score ADD takes the scores'
own range lowered by ``MASKED_MARGIN``, as the file's does, not the -10000 of the padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional
from torch.overrides import TorchFunctionMode

from pocketbert.formats.tflite.ranges import MASKED_MARGIN
from pocketbert.models.blocks import MASK_BIAS

# ops that move values without computing new ones: LiteRT keeps their input's scale
_LAYOUT = {
    "view", "reshape", "permute", "transpose", "contiguous", "unsqueeze", "squeeze", "expand", "expand_as",
    "flatten", "__getitem__", "split", "chunk", "unbind", "t", "to", "type_as", "float", "narrow", "select",
    "clone", "detach", "size", "dim", "__get__", "__set__", "ones_like", "zeros_like", "cumsum", "cat",
    "dropout", "eq", "__eq__", "ne", "lt", "gt", "le", "ge",
}
_WEIGHTED = {functional.linear: 0, functional.conv1d: 0, functional.conv2d: 0}  # op -> weight's output-channel axis
_SOFTMAX = {"softmax", "_softmax"}
_TINY = 1e-12


@dataclass
class Site:
    """One op output's running range."""

    op: str = ""
    low: float = 0.0
    high: float = 0.0
    seen: int = 0
    fixed: bool = False

    def observe(self, low: float, high: float, extremes: bool, momentum: float) -> None:
        low, high = min(low, 0.0), max(high, 0.0)  # zero stays exact, as the quantizer keeps it
        if self.seen == 0:
            self.low, self.high = low, high
        elif extremes:
            self.low, self.high = min(self.low, low), max(self.high, high)
        else:
            self.low += (1 - momentum) * (low - self.low)
            self.high += (1 - momentum) * (high - self.high)
        self.seen += 1


@dataclass
class IntegerScheme:
    """The recipe's integer arithmetic: activation bits (8 asymmetric, 16 symmetric)."""

    activation_bits: int = 8
    momentum: float = 0.95  # the weight ai-edge-quantizer's calibration gives the past

    @property
    def extremes(self) -> bool:  # 16-bit ranges are the min/max over every example
        return self.activation_bits > 8


def fake_quantize_weight(weight: torch.Tensor, axis: int) -> torch.Tensor:
    """Symmetric int8 per output channel ([-127, 127], zero point 0), straight-through."""
    dims = [d for d in range(weight.dim()) if d != axis]
    scale = (weight.detach().abs().amax(dim=dims) / 127.0).clamp(min=1e-12)
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale.float(), zero, axis, -127, 127)


def fake_quantize_activation(x: torch.Tensor, low: float, high: float, bits: int) -> torch.Tensor:
    if bits > 8:  # int16: symmetric, zero point 0
        scale = max(abs(low), abs(high)) / 32767.0 or 1e-12
        return torch.fake_quantize_per_tensor_affine(x, scale, 0, -32767, 32767)
    scale = (high - low) / 255.0 or 1e-12
    zero = int(round(-128 - low / scale))
    return torch.fake_quantize_per_tensor_affine(x, scale, max(-128, min(127, zero)), -128, 127)


class IntegerEmulation(TorchFunctionMode):
    """``with emulation:`` runs the model as the integer file computes. ``observe`` updates the
    ranges from this forward; ``quantize`` rounds (off: the float model, ranges still seen)."""

    def __init__(self, scheme: IntegerScheme) -> None:
        super().__init__()
        self.scheme = scheme
        self.observe = True
        self.quantize = True
        self.sites: list[Site] = []
        self.float_sites: set[int] = set()  # left unrounded: to measure what each op's rounding costs
        self._next = 0

    def calibrate(self, forward) -> None:
        """Ranges from one float forward (``forward()`` runs the model), as the file's
        calibration takes them from the float model; rounding is on again after it."""
        self.observe, self.quantize = True, False
        try:
            with torch.no_grad(), self:
                forward()
        finally:
            self.observe, self.quantize = False, True

    def __enter__(self):
        self._next = 0
        return super().__enter__()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.quantize and func in _WEIGHTED:
            args = list(args)
            weight_at = 1
            if len(args) > weight_at:
                args[weight_at] = fake_quantize_weight(args[weight_at], _WEIGHTED[func])
            elif "weight" in kwargs:
                kwargs["weight"] = fake_quantize_weight(kwargs["weight"], _WEIGHTED[func])
        if name == "rsqrt":  # a variance rounded to 0: the file saturates, float would give inf (and NaN gradients)
            args = (args[0].clamp(min=_TINY), *args[1:])
        out = func(*args, **kwargs)
        if name in _LAYOUT or not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return out
        index = self._next
        site = self._site(name)
        if name in _SOFTMAX:  # LiteRT's int8 softmax: scale 1/256, zero point -128
            site.low, site.high, site.fixed = 0.0, 255.0 / 256.0 if self.scheme.activation_bits == 8 else 1.0, True
        elif self.observe and not site.fixed:
            low, high = _per_example_range(out)
            if name in ("add", "__add__", "__radd__"):
                low = _masked_scores_floor(args, low)
            site.observe(low, high, self.scheme.extremes, self.scheme.momentum)
        if not self.quantize or index in self.float_sites or site.seen == 0 and not site.fixed:
            return out
        return self.round_activation(index, out)

    def round_activation(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Site ``index``'s output as the file stores it (its tracked range, the recipe's bits)."""
        site = self.sites[index]
        return fake_quantize_activation(x, site.low, site.high, self.scheme.activation_bits)

    def _site(self, op: str) -> Site:
        if self._next == len(self.sites):
            self.sites.append(Site(op))
        site = self.sites[self._next]
        self._next += 1
        return site


def _per_example_range(x: torch.Tensor) -> tuple[float, float]:
    """The calibrator sees one example at a time: the batch's per-example extremes, averaged."""
    with torch.no_grad():
        rows = x.detach().reshape(x.shape[0], -1) if x.dim() > 1 else x.detach().reshape(1, -1)
        return float(rows.amin(1).mean()), float(rows.amax(1).mean())


def _masked_scores_floor(args, low: float) -> float:
    """scores + padding bias: the range's floor is the scores' minimum - MASKED_MARGIN."""
    tensors = [a for a in args[:2] if isinstance(a, torch.Tensor)]
    if len(tensors) != 2:
        return low
    with torch.no_grad():
        bias = [t for t in tensors if float(t.min()) <= MASK_BIAS / 2]
        if len(bias) != 1:
            return low
        scores = tensors[1] if bias[0] is tensors[0] else tensors[0]
        return max(low, float(scores.min()) - MASKED_MARGIN)
