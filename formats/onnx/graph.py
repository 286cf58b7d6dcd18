"""Where things are in an exported ONNX graph: the module a node came from, the attention
softmax and its mask add, the feed-forward MatMuls. Both quantizers (onnxruntime's and the
per-token rewrite) choose what stays float with these."""

from __future__ import annotations

import ast
import re
from pathlib import Path


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


def ffn_projections(graph) -> dict[str, list[str]]:
    """The feed-forward MatMuls (SqueezeBERT's: pointwise Convs), found by where the GELU sits:
    "in" produce the GELU's input (MatMul -> Add -> Div -> Erf), "out" read its output
    (Erf -> Add -> Mul -> Mul -> MatMul).
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

    matmuls = [n for n in graph.node if n.op_type in ("MatMul", "Gemm", "Conv")]
    return {"in": [n.name for n in matmuls if _near(n, downs, GELU_OPS, 3)],
            "out": [n.name for n in matmuls if _near(n, ups, GELU_OPS, 4)]}


def weight_matmuls(graph) -> list:
    """The MatMuls by a constant 2-D weight (what the per-token rewrite quantizes), in graph order."""
    weights = {i.name for i in graph.initializer if len(i.dims) == 2}
    return [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def weight_matmul_inputs(graph) -> list[str]:
    """The activations ``weight_matmuls`` read, each once, in graph order."""
    return list(dict.fromkeys(n.input[0] for n in weight_matmuls(graph)))


def lookup_tables(graph) -> list[str]:
    """The constant 2-D tables Gathers read, every one of them along the rows (word, position
    and type embeddings)."""
    constants = {i.name for i in graph.initializer if len(i.dims) == 2}
    axes: dict[str, set[int]] = {}
    for node in graph.node:
        if node.op_type == "Gather" and node.input[0] in constants:
            axes.setdefault(node.input[0], set()).add(next((a.i for a in node.attribute if a.name == "axis"), 0))
    return sorted(name for name, read_along in axes.items() if read_along == {0})


def activation_products(graph) -> list[str]:
    """MatMuls of two activations (attention's query x key and probabilities x value)."""
    constants = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and not constants & set(n.input)]


def attention_output_projections(graph) -> list[str]:
    """The constant-weight MatMuls reading, through layout ops only, a product of two
    activations: each attention's output projection, whose input (a mix of value rows) has
    no outlier channels and takes a calibrated int8 range."""
    producers = {output: node for node in graph.node for output in node.output}
    products = set(activation_products(graph))
    layout = {"Transpose", "Reshape", "Split", "Squeeze", "Unsqueeze", "Flatten"}

    def reads_a_product(name: str) -> bool:
        node = producers.get(name)
        while node is not None and node.op_type in layout:
            node = producers.get(node.input[0])
        return node is not None and node.name in products

    return [n.name for n in weight_matmuls(graph) if reads_a_product(n.input[0])]
