"""SmoothQuant and error feedback on a PyTorch model's matrix layers, for the formats that
quantize the PyTorch model itself (ExecuTorch's XNNPACK quantizer).

XNNPACK's dynamic kernels quantize each row of a layer's input at run time, as onnxruntime's
per-token rows and LiteRT's dynamic FULLY_CONNECTED do; a trained BERT's outlier channels set
each row's step and its other channels round to a few codes. The two remedies the ONNX and
LiteRT recipes apply to their files are applied here to the model before PT2E sees it:

- each activation the quantized layers read is divided by its SmoothQuant divisors s [K]
  (formats/smoothquant.py) in one float multiply per reading layer (``SmoothedInput``; the
  residual and any other reader keep the activation itself), and those layers' weights'
  input channels are multiplied by s: the float function is unchanged up to rounding;
- each weight is moved onto its per-channel int8 grid by error feedback against the
  calibration activations (formats/gptq.py), so that PT2E's per-channel min/max observer
  derives the same grid and keeps exactly those codes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from pocketbert.formats.gptq import GramAccumulator, fit_to_symmetric_grid, real_token_rows
from pocketbert.formats.smoothquant import migration_divisors, smoothed_gram

QMAX = 127  # XNNPACK's symmetric per-channel int8 weights: step = largest |weight| / 127


@dataclass(frozen=True)
class FittedLayers:
    """What ``smooth_and_fit`` changed (for the manifest)."""

    smoothed: int  # activations divided (one group of layers reading the same tensor each)
    fitted: int  # weights moved onto their int8 grid by error feedback


class SmoothedInput(torch.nn.Module):
    """``layer(x * inverse)``: the layer's input divided channel-wise by s (``inverse`` = 1 / s
    [K]), in float, before the layer's own (quantized) input."""

    def __init__(self, layer: torch.nn.Module, inverse: np.ndarray, channel_axis: int):
        super().__init__()
        self.layer = layer
        shape = [-1] + [1] * (-channel_axis - 1)  # [K] on the last axis, [K, 1] on axis -2
        self.register_buffer("inverse", torch.from_numpy(inverse.astype(np.float32)).reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x * self.inverse)


def _channel_axis(layer: torch.nn.Module) -> int:
    """Where a layer's input keeps its channels: last for a Linear ([.., K]), -2 for a 1x1
    convolution on [B, K, W]."""
    return -1 if isinstance(layer, torch.nn.Linear) else -2


def _weight_matrix(layer: torch.nn.Module) -> torch.Tensor:
    """The layer's weight as [N, K] (a 1x1 convolution's [N, K, 1(, 1)] viewed so)."""
    return layer.weight.detach().reshape(layer.weight.shape[0], -1)


def _rows(layer: torch.nn.Module, x: torch.Tensor, mask: np.ndarray | None) -> np.ndarray:
    """The layer's input as rows [tokens, K], padding rows left out."""
    value = x.detach().float()
    if _channel_axis(layer) == -2:
        value = value.transpose(-1, -2)  # [B, K, W] -> [B, W, K]
    return real_token_rows(value.numpy(), mask)


def smooth_and_fit(model: torch.nn.Module, layers: list[str], examples: list[dict[str, torch.Tensor]],
                   alpha: float, error_feedback: bool) -> tuple[torch.nn.Module, FittedLayers]:
    """A copy of ``model`` whose ``layers`` (paths of Linears or 1x1 convolutions) read
    smoothed inputs (strength ``alpha``; 0: none) and carry weights fitted by error feedback
    (if asked), from the activations ``model(**example)`` shows them (padding rows, where an
    example's ``attention_mask`` is 0, are not text). Layers reading one tensor (the heads'
    Q, K and V) share one divisor, taken over all their weights."""
    modules = dict(model.named_modules())
    leader: dict[str, str] = {}  # path -> the first layer reading the same tensor
    peaks: dict[str, np.ndarray] = {}  # leader -> largest |x| per input channel [K]
    grams: dict[str, np.ndarray] = {}  # leader -> X^T X [K, K]
    accumulator = GramAccumulator(grams)
    first_reader: dict[int, str] = {}  # id of an input tensor of the first example -> its first reader
    held, current = [], {}

    def observe(path):
        def hook(layer, inputs, _output):
            x = inputs[0]
            if path not in leader:
                held.append(x)  # alive until the first example is done: ids stay unique
                leader[path] = first_reader.setdefault(id(x), path)
            if leader[path] != path:
                return  # the same rows as its leader's
            rows = _rows(layer, x, current.get("attention_mask"))  # [tokens, K]
            if rows.size:
                peak = np.abs(rows).max(axis=0)
                peaks[path] = np.maximum(peaks[path], peak) if path in peaks else peak
                if error_feedback:
                    accumulator.add(path, rows)
        return hook

    handles = [modules[path].register_forward_hook(observe(path)) for path in layers]
    try:
        with torch.no_grad():
            for example in examples:
                current.clear()
                current.update({k: v.numpy() for k, v in example.items()})
                model(**example)
                held.clear()
                first_reader.clear()
    finally:
        for handle in handles:
            handle.remove()
    accumulator.flush()
    groups: dict[str, list[str]] = {}
    for path in layers:
        if leader.get(path) in peaks:
            groups.setdefault(leader[path], []).append(path)

    changed = copy.deepcopy(model)
    modules = dict(changed.named_modules())
    smoothed = 0
    for first, paths in groups.items():
        weights = {path: _weight_matrix(modules[path]).double().numpy() for path in paths}  # [N, K] each
        divisor = migration_divisors(peaks[first], [w.T for w in weights.values()], alpha) if alpha else None
        for path, weight in weights.items():
            layer = modules[path]
            if divisor is not None:
                weight = weight * divisor[None, :]
            if error_feedback:
                weight = fit_to_symmetric_grid(weight, smoothed_gram(grams[first], divisor), QMAX)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(weight).reshape(layer.weight.shape))
            if divisor is not None:
                parent, _, name = path.rpartition(".")
                setattr(changed.get_submodule(parent), name, SmoothedInput(layer, 1.0 / divisor, _channel_axis(layer)))
        smoothed += divisor is not None
    fitted = sum(len(paths) for paths in groups.values()) if error_feedback else 0
    return changed, FittedLayers(smoothed=smoothed, fitted=fitted)
