"""Error-feedback weight codes for the LiteRT recipes (formats/gptq.py).

ai-edge-quantizer rounds each weight of the float file to its nearest int8 code, on a
per-channel grid it derives from the channel's largest weight. So the float file it is given
carries weights already moved onto that grid by error feedback, the largest weight of every
channel kept at +-127: the quantizer derives the same grid and returns exactly the chosen
codes. The kernels and the file layout are the quantizer's own; only which code each weight
gets changes. The Gram matrices come from the float file itself, run on the calibration text
with every tensor kept (the FULLY_CONNECTED and 1x1 CONV_2D inputs over real tokens:
weight_passes.py).
"""

from __future__ import annotations

import numpy as np

from pocketbert.formats.gptq import fit_to_symmetric_grid
from pocketbert.formats.tflite.matrix_inputs import store_weight, weight_matrix

QMAX = 127  # ai-edge-quantizer's symmetric int8 weights: step = largest |weight| / 127


def fit_weights(model, grams: dict[int, np.ndarray]) -> int:
    """Move each weight buffer of ``grams`` (-> X^T X [K, K] of the rows it multiplies) in
    ``model`` (a ModelT, changed in place) onto its int8 grid by error feedback; the count."""
    for buffer, gram in grams.items():
        weight = weight_matrix(model, buffer, gram.shape[0])  # [N, K]
        store_weight(model, buffer, fit_to_symmetric_grid(weight, gram, QMAX))
    return len(grams)
