"""Is the exported file the same function as the PyTorch model? Fresh random inputs at
several shapes (right-padded batches of mixed lengths), compared output by output.

Failures are typed and checked in this order, each naming the output and the figure:
an output missing, then a shape that differs, then values over ``atol``.
"""

from __future__ import annotations

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.contracts.format import DEFAULT_ATOL
from pocketbert.contracts.spec import ExportSpec, random_inputs, validation_shapes


# argmax over hidden dimensions means nothing: no top-1 for these outputs
HIDDEN_OUTPUTS = ("last_hidden_state", "pooler_output", "sentence_embedding")


class ValidationError(PocketbertError):
    """The exported graph does not compute what the PyTorch model computes."""


class OutputNamesError(ValidationError):
    pass


class OutputShapeError(ValidationError):
    pass


class OutputValuesError(ValidationError):
    pass


def compare(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], names, atol: float, where: str) -> dict[str, float]:
    missing = [name for name in names if name not in got]
    if missing:
        raise OutputNamesError(f"{where}: output {missing[0]} is missing (the file gives {', '.join(got) or 'nothing'})")
    for name in names:
        if tuple(got[name].shape) != tuple(expected[name].shape):
            raise OutputShapeError(
                f"{where}: output {name} has shape {tuple(got[name].shape)}, PyTorch gives {tuple(expected[name].shape)}"
            )
    diffs = {}
    for name in names:
        diff = np.abs(got[name].astype(np.float64) - expected[name].astype(np.float64))
        diffs[name] = float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0
    for name, value in diffs.items():
        if not value <= atol:
            raise OutputValuesError(f"{where}: output {name} differs by {value:.3g} (max abs), over atol {atol:g}")
    return diffs


def validate(reference, candidate, spec: ExportSpec, vocab_size: int, atol: float = DEFAULT_ATOL, label: str = "") -> dict:
    """Run both runners on the validation shapes; return the figures for the manifest."""
    cases = []
    for index, sizes in enumerate(validation_shapes(spec)):
        inputs = random_inputs(spec, vocab_size, sizes, seed=1000 + index)
        shape = list(inputs["input_ids"].shape)
        where = f"{label or 'export'} at input shape {shape}"
        diffs = compare(reference(inputs), candidate(inputs), spec.output_names, atol, where)
        cases.append({"input_shape": shape, "max_abs_diff": diffs})
    worst = max(v for case in cases for v in case["max_abs_diff"].values())
    return {"atol": atol, "passed": True, "max_abs_diff": worst, "cases": cases}


def agreement(reference, candidate, spec: ExportSpec, vocab_size: int, label: str = "") -> dict:
    """How close a quantized file stays to its float reference: per output max and mean
    abs diff, cosine similarity and top-1 agreement (argmax over the last axis, on real
    tokens only), over the validation shapes. Names and shapes must match exactly and
    values must be finite; closeness is reported, not gated."""
    totals: dict[str, dict[str, list[float]]] = {}
    for index, sizes in enumerate(validation_shapes(spec)):
        inputs = random_inputs(spec, vocab_size, sizes, seed=2000 + index)
        where = f"{label or 'quantized'} at input shape {list(inputs['input_ids'].shape)}"
        expected, got = reference(inputs), candidate(inputs)
        compare(expected, got, spec.output_names, np.inf, where)
        for name in spec.output_names:
            a, b = expected[name].astype(np.float64), got[name].astype(np.float64)
            if not np.isfinite(b).all():
                raise OutputValuesError(f"{where}: output {name} has non-finite values")
            keep = np.ones(a.shape[:-1], dtype=bool)
            if a.ndim == inputs["attention_mask"].ndim + 1:  # per-token outputs: real tokens only
                keep = inputs["attention_mask"].astype(bool)
            stats = totals.setdefault(name, {"max": [], "mean": [], "cos": [], "top1": []})
            diff = np.abs(a - b)
            stats["max"].append(float(diff.max()))
            stats["mean"].append(float(diff.mean()))
            stats["cos"].append(float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
            if a.ndim >= 2 and a.shape[-1] > 1 and name not in HIDDEN_OUTPUTS:
                stats["top1"].append(float((a.argmax(-1) == b.argmax(-1))[keep].mean()))
    return {
        name: {
            "max_abs_diff": max(s["max"]),
            "mean_abs_diff": float(np.mean(s["mean"])),
            "cosine": min(s["cos"]),
            "top1_agreement": float(np.mean(s["top1"])) if s["top1"] else None,
        }
        for name, s in totals.items()
    }
