"""Error-feedback weight codes for the LiteRT recipes (formats/gptq.py).

ai-edge-quantizer rounds each weight of the float file to its nearest int8 code, on a
per-channel grid it derives from the channel's largest weight. So the float file it is given
carries weights already moved onto that grid by error feedback, the largest weight of every
channel kept at +-127: the quantizer derives the same grid and returns exactly the chosen
codes. The kernels and the file layout are the quantizer's own; only which code each weight
gets changes. The Gram matrices come from the float file itself, run on the calibration text
with every tensor kept (the FULLY_CONNECTED and 1x1 CONV_2D inputs over real tokens).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketbert.formats.gptq import GramAccumulator, round_with_error_feedback
from pocketbert.formats.tflite.matrix_inputs import calibration_rows, matrix_inputs, store_weight, weight_matrix

QMAX = 127  # ai-edge-quantizer's symmetric int8 weights: step = largest |weight| / 127


def fit_weights(source: Path, target: Path, feed: dict[str, list[dict]], entries: list[dict]) -> dict:
    """Write ``source`` to ``target`` with every matrix weight (FULLY_CONNECTED, 1x1 CONV_2D)
    that calibration reached and the quantizer's ``entries`` quantize moved onto its int8
    grid by error feedback (one that an op they keep float reads, --exclude'd, keeps its
    values); ``feed``: signature -> examples."""
    from ai_edge_litert.tools import flatbuffer_utils

    from pocketbert.formats.tflite.graph import write_in_place

    model = flatbuffer_utils.read_model(str(source))
    grams = _weight_grams(model, source, feed, entries)
    for buffer, gram in grams.items():
        weight = weight_matrix(model, buffer, gram.shape[0])  # [N, K]
        step = np.abs(weight).max(axis=1)  # [N]
        step = np.where(step == 0, 1.0, step / QMAX)
        codes = round_with_error_feedback(weight.T, gram, step, QMAX, keep_channel_maxima=True)  # [K, N]
        store_weight(model, buffer, (codes * step).T)
    write_in_place(model, target, ".fitted")
    return {"error_feedback_weights": len(grams)}


def _weight_grams(model, source: Path, feed: dict[str, list[dict]], entries: list[dict]) -> dict[int, np.ndarray]:
    """weight buffer index -> X^T X [K, K] of the activations every quantized matrix product
    reading that weight saw, summed over signatures (buckets share weights); a weight that
    another op also reads is left out (it keeps its values)."""
    inputs = matrix_inputs(model, entries)
    grams: dict[int, np.ndarray] = {}
    pending = GramAccumulator(grams)
    for activation, rows in calibration_rows(model, source, feed, set(inputs.readers)):
        for reader in inputs.readers[activation]:
            pending.add(reader.buffer, rows)
    pending.flush()
    return {buffer: gram for buffer, gram in grams.items() if buffer not in inputs.fixed}
