"""The float file's weight passes before ai-edge-quantizer, from one calibration run.

Smoothing (smoothing.py) needs each quantized input's per-channel peaks, error feedback
(error_feedback.py) the Gram matrices of the rows each weight multiplies. Both come from one
run of the float file with every tensor kept (the costly part: ~15 s for MiniLM at seq 128);
the Gram of a smoothed input X D, D = diag(1 / s), is D X^T X D, so error feedback after
smoothing needs no second run.
"""

from __future__ import annotations

from pathlib import Path

from pocketbert.formats.smoothquant import smoothed_gram
from pocketbert.formats.tflite.error_feedback import fit_weights
from pocketbert.formats.tflite.matrix_inputs import input_statistics, matrix_inputs
from pocketbert.formats.tflite.smoothing import smooth_matrix_inputs


def prepare_weights(source: Path, target: Path, feed: dict[str, list[dict]], entries: list[dict], *,
                    alpha: float, error_feedback: bool) -> dict:
    """Write ``source`` to ``target`` with the inputs of the matrix products the quantizer's
    ``entries`` quantize smoothed (strength ``alpha``; 0: not) and their weights moved onto
    their int8 codes by error feedback (if asked); ``feed``: signature -> examples. Weights
    another op reads, or one the entries keep float, keep their values."""
    from ai_edge_litert.tools import flatbuffer_utils

    from pocketbert.formats.tflite.graph import write_in_place

    model = flatbuffer_utils.read_model(str(source))
    inputs = matrix_inputs(model, entries)
    statistics = input_statistics(model, source, feed, inputs, grams=error_feedback)
    details, divisors = {}, {}
    if alpha:
        smoothing = smooth_matrix_inputs(model, inputs, statistics.peaks, alpha)
        divisors = smoothing.divisors
        details |= {"smoothed_activations": smoothing.activations, "smoothing_alpha": alpha}
    if error_feedback:
        grams = {buffer: smoothed_gram(gram, divisors.get(buffer)) for buffer, gram in statistics.grams.items()
                 if buffer not in inputs.fixed}
        details["error_feedback_weights"] = fit_weights(model, grams)
    write_in_place(model, target, ".prepared")
    return details

