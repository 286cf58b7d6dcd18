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


def random_batches(spec: ExportSpec, vocab_size: int, seed: int = 2000) -> list[dict[str, np.ndarray]]:
    """Fresh random ids at each validation shape (right-padded, mixed lengths), seeded:
    export validation uses seed 1000, the agreement of a quantized file 2000."""
    return [random_inputs(spec, vocab_size, sizes, seed=seed + index)
            for index, sizes in enumerate(validation_shapes(spec))]


def validate(reference, candidate, spec: ExportSpec, vocab_size: int, atol: float = DEFAULT_ATOL, label: str = "") -> dict:
    """Run both runners on the validation shapes; return the figures for the manifest."""
    cases = []
    for inputs in random_batches(spec, vocab_size, seed=1000):
        shape = list(inputs["input_ids"].shape)
        where = f"{label or 'export'} at input shape {shape}"
        diffs = compare(reference(inputs), candidate(inputs), spec.output_names, atol, where)
        cases.append({"input_shape": shape, "max_abs_diff": diffs})
    worst = max(v for case in cases for v in case["max_abs_diff"].values())
    return {"atol": atol, "passed": True, "max_abs_diff": worst, "cases": cases}
