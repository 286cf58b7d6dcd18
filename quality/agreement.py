"""How close a file stays to its reference: the one measure quantize records
(``agreement_with_float``) and ``pocketbert parity`` reports, on random ids and on real
sentences alike. The caller chooses the batches (``validate.random_batches`` or tokenized
corpus sentences); the figures are computed one way.

Per output, over all batches: the largest abs diff, the mean abs diff (the mean of each
batch's), the lowest cosine similarity of a batch's whole output, and top-1 agreement
(argmax over the last axis) pooled over every counted row: real tokens only for per-token
outputs, every row for per-sequence ones; none for hidden states, where an argmax over
dimensions means nothing. Names and shapes must match exactly and both sides must be
finite (nothing can agree with a NaN); closeness itself is reported, not gated.
"""

from __future__ import annotations

import numpy as np

from pocketbert.quality.validate import HIDDEN_OUTPUTS, OutputValuesError, compare


def agreement(reference, candidate, batches, output_names, label: str) -> dict[str, dict]:
    """{output: {max_abs_diff, mean_abs_diff, cosine, top1_agreement}} of ``candidate``
    against ``reference`` on ``batches`` (model input dicts). Errors name ``label`` and
    the input shape ("model.onnx on corpus sentences at input shape [2, 16]")."""
    totals: dict[str, dict[str, list[float]]] = {}
    for inputs in batches:
        where = f"{label} at input shape {list(inputs['input_ids'].shape)}"
        expected, got = reference(inputs), candidate(inputs)
        compare(expected, got, output_names, np.inf, where)
        mask = inputs["attention_mask"].astype(bool)
        for name in output_names:
            a, b = expected[name].astype(np.float64), got[name].astype(np.float64)
            if not np.isfinite(b).all():
                raise OutputValuesError(f"{where}: output {name} has non-finite values")
            if not np.isfinite(a).all():
                raise OutputValuesError(f"{where}: the reference's output {name} has non-finite values")
            keep = mask if a.ndim == mask.ndim + 1 else np.ones(a.shape[:-1], dtype=bool)
            stats = totals.setdefault(name, {"max": [], "mean": [], "cos": [], "agree": [], "counted": []})
            diff = np.abs(a - b)
            stats["max"].append(float(diff.max()) if diff.size else 0.0)
            stats["mean"].append(float(diff.mean()) if diff.size else 0.0)
            stats["cos"].append(float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
            if a.ndim >= 2 and a.shape[-1] > 1 and keep.any() and name not in HIDDEN_OUTPUTS:
                stats["agree"].append(float((a.argmax(-1) == b.argmax(-1))[keep].sum()))
                stats["counted"].append(float(keep.sum()))
    return {
        name: {
            "max_abs_diff": max(s["max"]),
            "mean_abs_diff": float(np.mean(s["mean"])),
            "cosine": min(s["cos"]),
            "top1_agreement": sum(s["agree"]) / sum(s["counted"]) if s["counted"] else None,
        }
        for name, s in totals.items()
    }
