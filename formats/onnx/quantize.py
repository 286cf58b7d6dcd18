"""int8 for ONNX Runtime with onnxruntime.quantization: dynamic (weights int8, activations
at run time) and static QDQ calibrated with MinMax, Entropy or Percentile."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np

from pocketbert.errors import PocketbertError, first_line
from pocketbert.quiet import quiet_libraries
from pocketbert.runtime.recipe import Recipe


def module_path(node) -> str:
    """The PyTorch module a node came from, named as in the state dict
    ("bert.encoder.layer.0.attention.self.query"), from the dynamo exporter's name scopes or
    the TorchScript exporter's "/model/bert/encoder/layer.0/.../MatMul" node names."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = [s for s in ast.literal_eval(prop.value) if s.startswith("model")]
            return scopes[-1].removeprefix("model").lstrip(".") if scopes else ""
    parts = node.name.strip("/").split("/")
    return ".".join(parts[1:-1]) if len(parts) > 2 and parts[0] == "model" else node.name


def matching_nodes(model_path: Path, patterns: list[str]) -> dict[str, list[str]]:
    """Node names whose module path (or own name) each exclude pattern matches (regex)."""
    import onnx

    nodes = onnx.load(str(model_path), load_external_data=False).graph.node
    return {p: [n.name for n in nodes if re.search(p, module_path(n)) or re.search(p, n.name)] for p in patterns}


def softmax_nodes(graph) -> list[str]:
    """Every Softmax and the Add that feeds it the masked scores (recipes with float_softmax)."""
    producers = {output: node for node in graph.node for output in node.output}
    names = []
    for node in graph.node:
        if node.op_type == "Softmax":
            names.append(node.name)
            feeder = producers.get(node.input[0])
            if feeder is not None and feeder.op_type == "Add":
                names.append(feeder.name)
    return names


def _near(node, step, op_types: set[str], hops: int) -> bool:
    """Whether a node of ``op_types`` is within ``hops`` steps along ``step`` (producers or
    consumers of a node)."""
    frontier = [node]
    for _ in range(hops):
        frontier = [n for f in frontier for n in step(f)]
        if any(n.op_type in op_types for n in frontier):
            return True
    return False


GELU_OPS = {"Erf", "Gelu", "FastGelu", "BiasGelu"}


def ffn_matmuls(graph) -> dict[str, list[str]]:
    """The feed-forward MatMuls, found by where the GELU sits: "in" produce the GELU's input
    (MatMul -> Add -> Div -> Erf), "out" read its output (Erf -> Add -> Mul -> Mul -> MatMul).
    The FFN output carries a trained BERT's outlier channels (weights 18-44x their 99.9th
    percentile): per-tensor int8 of that one layer alone costs 0.03 pooled cosine."""
    producers = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def ups(node):
        return [producers[i] for i in node.input if i in producers]

    def downs(node):
        return [c for o in node.output for c in consumers.get(o, [])]

    matmuls = [n for n in graph.node if n.op_type in ("MatMul", "Gemm")]
    return {"in": [n.name for n in matmuls if _near(n, downs, GELU_OPS, 3)],
            "out": [n.name for n in matmuls if _near(n, ups, GELU_OPS, 4)]}


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of input dicts."""

    def __init__(self, inputs: list[dict[str, np.ndarray]]):
        self.items = iter(inputs)

    def get_next(self):
        return next(self.items, None)

    def rewind(self):  # pragma: no cover - not used by quantize_static's single pass
        pass


def quantize_onnx(recipe: Recipe, source: Path, target: Path, calibration, excluded_nodes: list[str]) -> dict:
    import onnx

    # the dynamo exporter's value_info can disagree with onnx's own shape inference, which
    # the quantizer runs (seen on a 2-label classifier): let it infer shapes afresh
    graph = onnx.load(str(source))
    del graph.graph.value_info[:]
    staged = target.with_name("float.staged.onnx")
    onnx.save(graph, str(staged))
    kept_float = softmax_nodes(graph.graph) if recipe.float_softmax else []
    outliers = _outlier_nodes(recipe, graph.graph) if recipe.float_outliers else []
    excluded_nodes = sorted({*excluded_nodes, *kept_float, *outliers})
    try:  # quiet: advice on the root logger ("consider pre-processing"), calibrators' prints
        with quiet_libraries():
            _quantize(recipe, staged, target, calibration, excluded_nodes)
    except (ValueError, RuntimeError) as exc:  # e.g. the entropy calibrator's histogram on a degenerate range
        raise PocketbertError(f"onnxruntime could not apply {recipe.name}: {first_line(exc)}") from None
    finally:
        staged.unlink()
    return {"tool": "onnxruntime.quantization", "float_softmax_nodes": kept_float, "float_outlier_nodes": outliers}


def _outlier_nodes(recipe: Recipe, graph) -> list[str]:
    """Dynamic: the FFN output MatMuls (the outlier weights; with them float and per-channel
    weights, pooled cosine 0.964 -> 0.996 on real text). Static: both FFN MatMuls (their
    activations carry the residual stream's outlier channels too: 0.834 -> 0.9975)."""
    found = ffn_matmuls(graph)
    return found["out"] if recipe.method == "dynamic" else found["in"] + found["out"]


def _quantize(recipe: Recipe, source: Path, target: Path, calibration, excluded_nodes: list[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    weight_type = QuantType.QUInt8 if recipe.weights == "uint8" else QuantType.QInt8
    if recipe.method == "dynamic":
        quantize_dynamic(str(source), str(target), weight_type=weight_type, per_channel=recipe.per_channel,
                         reduce_range=recipe.reduce_range, nodes_to_exclude=excluded_nodes)
    else:
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[recipe.calibration]
        quantize_static(
            str(source), str(target), _Reader(calibration), quant_format=QuantFormat.QDQ,
            per_channel=recipe.per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=method, nodes_to_exclude=excluded_nodes,
            # with float outliers only the projections are int8: Add and LayerNorm inputs
            # carry the residual stream's outliers (MinMax over them: pooled cosine 0.83)
            op_types_to_quantize=["MatMul"] if recipe.float_outliers else None,
        )
