"""Calibration statistics for the per-token rewrite's smoothing (per_token.py): the |x| max
of each channel of every activation a constant-weight MatMul reads, over the real tokens of
the calibration texts (padding rows are not text and are left out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketbert.formats.onnx.graph import weight_matmul_inputs


def channel_max(model_path: Path, calibration: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """activation name -> [K] max |x| per channel, from the float graph at ``model_path``."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    activations = weight_matmul_inputs(model.graph)
    if not activations or not calibration:
        return {}
    outputs = {o.name for o in model.graph.output}
    for name in activations:  # expose each as a graph output (its shape is inferred by the session)
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the names as written
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    batch = {i.name: i.shape[0] for i in session.get_inputs()}
    found: dict[str, np.ndarray] = {}
    for example in calibration:
        # a graph with a fixed batch > 1 takes each (batch-1) example repeated to fill it
        feed = {k: np.repeat(v, batch[k], axis=0) if isinstance(batch[k], int) and batch[k] != v.shape[0] else v
                for k, v in example.items() if k in batch}
        real = feed.get("attention_mask")
        values = session.run(activations, feed)
        for name, value in zip(activations, values):
            rows = np.abs(value.reshape(-1, value.shape[-1]))  # [B*S, K] (or [B*heads*S, K])
            if real is not None and rows.shape[0] == real.size:
                rows = rows[real.reshape(-1) > 0]
            if rows.size:
                top = rows.max(axis=0)
                found[name] = top if name not in found else np.maximum(found[name], top)
    return found
