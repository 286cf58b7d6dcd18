"""SmoothQuant's per-channel divisors (Xiao et al., ICML 2023), shared by the formats whose
dynamic recipes quantize each activation row at run time (ONNX per-token, LiteRT dynamic).

A row's step is set by its largest value, and BERT's residual stream carries a few channels
10-100x the rest (the special tokens' rows most of all): the row's other channels then round
to a few codes. Dividing channel k of the activation by s_k and multiplying input row k of
every weight that reads it by s_k leaves the float product unchanged and moves part of the
outlier into the weights, which are quantized per output channel and take it well.
"""

from __future__ import annotations

import numpy as np

LIMIT = 1e4  # divisors stay in [1 / LIMIT, LIMIT]: a channel calibration barely saw gets no extreme factor


def migration_divisors(activation_magnitude: np.ndarray, weights: list[np.ndarray], alpha: float) -> np.ndarray | None:
    """s [K] = a^alpha / w^(1 - alpha): ``activation_magnitude`` a [K] is the activation's
    largest |x| per channel over calibration, ``weights`` every [K, N] matrix that reads it
    (their largest |weight| per input row, w [K], is taken across all: they share one
    quantized copy of the activation). None when the shapes disagree (statistics of another
    tensor): the activation is left as it is."""
    a = activation_magnitude.astype(np.float64)
    w = np.max([np.abs(weight).max(axis=1) for weight in weights], axis=0).astype(np.float64)  # [K]
    if a.shape != w.shape:
        return None
    divisor = np.where((a > 0) & (w > 0), a ** alpha / np.maximum(w, 1e-12) ** (1 - alpha), 1.0)
    return np.clip(divisor, 1 / LIMIT, LIMIT).astype(np.float32)


def smoothed_gram(gram: np.ndarray, divisor: np.ndarray | None) -> np.ndarray:
    """X^T X [K, K] of rows divided channel-wise by ``divisor`` s [K] (None: undivided):
    D X^T X D with D = diag(1 / s), what error feedback needs after smoothing without a
    second calibration run."""
    if divisor is None:
        return gram
    inverse = 1.0 / divisor.astype(np.float64)
    return gram * np.outer(inverse, inverse)
