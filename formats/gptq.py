"""Weight codes chosen against the activations they meet, not rounded one by one (GPTQ,
Frantar et al., ICLR 2023).

Rounding each weight to its nearest code makes every error independent of the inputs. The
MatMul's output error is ``x @ (W - Q)``, so what matters is the error in the directions the
calibration activations take: with their second moment H = X^T X, rounding input row k of W
and spreading its error over the rows not yet rounded (weighted by H's inverse) cancels most
of it in ``x @ W``. The file keeps the same codes, scales and kernels; only which code each
weight gets changes. On the real all-MiniLM-L6-v2 the 7-bit weights of the per-token recipe
lose about as much as its 8-bit activations, and this is where that loss is won back.
"""

from __future__ import annotations

import numpy as np

BLOCK = 128  # input rows rounded together before their errors reach the rest (one GEMM per block)
DAMPING = 0.01  # of H's mean diagonal: keeps the inverse finite where calibration saw little


def round_with_error_feedback(weight: np.ndarray, gram: np.ndarray, step: np.ndarray, qmax: int,
                              keep_channel_maxima: bool = False) -> np.ndarray:
    """int8 codes [K, N] of ``weight`` [K, N] on the per-output-channel grid ``step`` [N]
    (codes in [-qmax, qmax]), minimising ``|X (W - codes * step)|`` for activations X whose
    Gram matrix X^T X is ``gram`` [K, K]. Rows are rounded largest-activation first, as the
    error they leave is the hardest to absorb later. With ``keep_channel_maxima`` the weight
    that set each channel's step keeps its code +-qmax (its error is fed back like any
    other): a quantizer that derives the step from the largest weight (ai-edge-quantizer)
    then finds the same grid in ``codes * step`` and gives back exactly these codes."""
    k = weight.shape[0]
    pinned: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # rounding position -> (columns, codes)
    h = gram.astype(np.float64).copy()  # [K, K]
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0  # a channel calibration never saw: nothing to trade against
    h[np.diag_indices(k)] += DAMPING * np.mean(np.diag(h))
    order = np.argsort(-np.diag(h), kind="stable")  # [K]
    h = h[np.ix_(order, order)]
    w = weight.astype(np.float64)[order]  # [K, N] rows in rounding order
    if keep_channel_maxima:
        largest = np.abs(w).argmax(axis=0)  # [N]: the position of each channel's largest weight
        for position in np.unique(largest):
            columns = np.flatnonzero(largest == position)
            pinned[int(position)] = (columns, np.sign(w[position, columns]) * qmax)
    # upper Cholesky factor of H^-1: row k holds how k's error moves the rows after it
    inverse = np.linalg.cholesky(np.linalg.inv(h)).T  # [K, K]
    codes = np.empty(w.shape, np.int8)
    for start in range(0, k, BLOCK):
        end = min(start + BLOCK, k)
        block = w[start:end].copy()  # [B, N]
        errors = np.empty_like(block)
        for i in range(end - start):
            row_codes = np.clip(np.round(block[i] / step), -qmax, qmax)  # [N]
            if start + i in pinned:
                columns, kept = pinned[start + i]
                row_codes[columns] = kept
            codes[start + i] = row_codes
            errors[i] = (block[i] - row_codes * step) / inverse[start + i, start + i]
            block[i + 1:] -= np.outer(inverse[start + i, start + i + 1:end], errors[i])
        w[end:] -= inverse[start:end, end:].T @ errors  # [K - end, N]
    restored = np.empty_like(codes)
    restored[order] = codes
    return restored


def fit_to_symmetric_grid(weight: np.ndarray, gram: np.ndarray, qmax: int) -> np.ndarray:
    """``weight`` [N, K] moved onto its symmetric per-output-channel grid (step = the
    channel's largest |weight| / ``qmax``) by error feedback against X^T X ``gram`` [K, K],
    the largest weight of every channel kept at +-qmax: a quantizer that derives the grid
    from the largest weight (ai-edge-quantizer, PT2E's per-channel observers) finds the same
    grid and returns exactly the chosen codes. Float, [N, K]."""
    step = np.abs(weight).max(axis=1)  # [N]
    step = np.where(step == 0, 1.0, step / qmax)
    codes = round_with_error_feedback(weight.T, gram, step, qmax, keep_channel_maxima=True)  # [K, N]
    return (codes * step).T


def real_token_rows(value: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """An activation [.., K] as rows [tokens, K], padding rows left out when the mask [B, S]
    has one entry per row (padding is not text: its rows would weigh in calibration)."""
    rows = value.reshape(-1, value.shape[-1])
    return rows[mask.reshape(-1) > 0] if mask is not None and rows.shape[0] == mask.size else rows


class GramAccumulator:
    """X^T X accumulated a few thousand rows at a time: one float32 GEMM per chunk (a product
    per example is ~30x slower), summed in float64 across chunks."""

    CHUNK = 4096  # rows per GEMM

    def __init__(self, grams: dict):
        """``grams``: key (an activation) -> X^T X [K, K], filled in place."""
        self.grams, self.rows = grams, {}

    def add(self, key, rows: np.ndarray) -> None:
        held = self.rows.setdefault(key, [])
        held.append(rows.astype(np.float32))
        if sum(len(r) for r in held) >= self.CHUNK:
            self._flush(key)

    def flush(self) -> None:
        for key in list(self.rows):
            self._flush(key)

    def _flush(self, key) -> None:
        held = self.rows.pop(key, [])
        if held:
            stacked = np.concatenate(held)  # [rows, K]
            self.grams[key] = self.grams.get(key, 0.0) + (stacked.T @ stacked).astype(np.float64)  # [K, K]
