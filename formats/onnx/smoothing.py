"""Calibration statistics for the per-token rewrite (per_token.py): the range of each channel
of every activation a constant-weight MatMul reads, over the real tokens of the calibration
texts (padding rows are not text and are left out). Smoothing reads the magnitudes; the
one-signed test (GELU outputs) reads the lows; the error-feedback rounding (formats/gptq.py) reads
the Gram matrix X^T X of the same rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketbert.formats.gptq import GramAccumulator, real_token_rows
from pocketbert.formats.onnx.graph import weight_matmul_inputs


@dataclass(frozen=True)
class ChannelRange:
    low: np.ndarray  # [K] smallest value seen per channel
    high: np.ndarray  # [K] largest value seen per channel

    @property
    def magnitude(self) -> np.ndarray:
        """[K] largest |x| per channel."""
        return np.maximum(np.abs(self.low), np.abs(self.high))

    def widened(self, other: "ChannelRange") -> "ChannelRange":
        return ChannelRange(np.minimum(self.low, other.low), np.maximum(self.high, other.high))


@dataclass
class OneRange:
    """What one uint8 range for a whole activation (onnxruntime's DynamicQuantizeLinear, the
    range including 0) leaves of it over the calibration texts: their signal power against
    that range's rounding noise (step^2 / 12 per value), summed text by text."""

    noise: float = 0.0
    signal: float = 0.0

    def add(self, rows: np.ndarray) -> None:
        """One text's rows [tokens, K]."""
        span = max(float(rows.max()), 0.0) - min(float(rows.min()), 0.0)
        self.noise += (span / 255) ** 2 / 12 * rows.size
        self.signal += float(np.square(rows, dtype=np.float64).sum())

    @property
    def snr_db(self) -> float:
        return float(10 * np.log10(self.signal / self.noise)) if self.noise > 0 and self.signal > 0 else float("inf")


@dataclass(frozen=True)
class CalibrationStatistics:
    ranges: dict[str, ChannelRange]  # activation name -> its per-channel range
    grams: dict[str, np.ndarray]  # activation name -> X^T X [K, K] (float64) over its rows
    one_range: dict[str, OneRange]  # activation name -> what one range per tensor leaves of it


def channel_ranges(model_path: Path, calibration: list[dict[str, np.ndarray]]) -> dict[str, ChannelRange]:
    """activation name -> its per-channel range, from the float graph at ``model_path``."""
    return calibration_statistics(model_path, calibration, grams=False).ranges


def calibration_statistics(model_path: Path, calibration: list[dict[str, np.ndarray]], *,
                           grams: bool) -> CalibrationStatistics:
    """Per-channel ranges (and with ``grams`` the Gram matrices) of every activation a
    constant-weight MatMul reads, from the float graph at ``model_path``."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    activations = weight_matmul_inputs(model.graph)
    found = CalibrationStatistics({}, {}, {})
    if not activations or not calibration:
        return found
    outputs = {o.name for o in model.graph.output}
    for name in activations:  # expose each as a graph output (its shape is inferred by the session)
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the names as written
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    batch = {i.name: i.shape[0] for i in session.get_inputs()}
    pending = GramAccumulator(found.grams) if grams else None
    for example in calibration:
        # a graph with a fixed batch > 1 takes each (batch-1) example repeated to fill it
        feed = {k: np.repeat(v, batch[k], axis=0) if isinstance(batch[k], int) and batch[k] != v.shape[0] else v
                for k, v in example.items() if k in batch}
        real = feed.get("attention_mask")
        values = session.run(activations, feed)
        for name, value in zip(activations, values):
            rows = real_token_rows(value, real)  # [tokens, K] (or [B*heads*S, K])
            if not rows.size:
                continue
            seen = ChannelRange(rows.min(axis=0), rows.max(axis=0))
            found.ranges[name] = found.ranges[name].widened(seen) if name in found.ranges else seen
            found.one_range.setdefault(name, OneRange()).add(rows)
            if pending is not None:
                pending.add(name, rows)
    if pending is not None:
        pending.flush()
    return found
