"""Key and value biases out of attention, where softmax turns them into constants.

A key bias adds (q + b_q) . b_k to every score of one query's row, the same for every key,
and softmax over the keys cancels it. A value bias leaves attention whole, since every row
of softmax weights sums to 1 (P (V + b_v) = P V + b_v), and joins the output projection's
bias (b_o + b_v W_o). Both are exact in real arithmetic; in float32 the outputs move by
rounding only. The int8 file then makes two elementwise passes fewer per layer (12 of its
~43 Adds in a 6-layer model), which the per-token recipe's latency against onnxruntime's own
dynamic file needs.

Only the layout BERT, DistilBERT and MobileBERT export is folded: the bias Add reaches the
scores or the value MatMul through one Reshape (heads split off the channels) and
Transposes, softmax runs over the last axis, and the value path comes back to channels
through the inverse transpose. SqueezeBERT's channels-first convolutions, and anything else,
are left as they are.
"""

from __future__ import annotations

import numpy as np

LAYOUT_OPS = {"Reshape", "Transpose"}  # move values without mixing them
SCORE_OPS = {"Mul", "Div", "Add", "Sub", "Where"}  # scaling and masking between scores and softmax


def fold_attention_biases(graph) -> int:
    """Remove the key and value bias Adds of every attention found in ``graph`` (in place);
    returns how many Adds went."""
    from onnx import numpy_helper

    index = _Index(graph)
    removed: list = []
    for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
        if _attribute(softmax, "axis", None) != -1:  # unset means axis 1 before opset 13: only an explicit -1
            continue
        scores = index.scores_above(softmax)
        key = index.bias_add_above(scores.input[1]) if scores is not None else None
        # scores = A @ B: a bias of B constant along B's last axis (the keys, when B's
        # [batch, tokens, heads, d] axes end up as [.., d, tokens]) adds one constant per row
        if key is not None and key[1][-1] == 1:
            removed.append(key[0])
        values = index.only_reader(softmax.output[0])
        if values is None or values.op_type != "MatMul" or values.input[0] != softmax.output[0]:
            continue
        value = index.bias_add_above(values.input[1])
        # P @ V sums over V's axis -2: the tokens, with d last
        if value is None or list(value[1][-2:]) != [1, 3]:
            continue
        projection = index.projection_below(values.output[0], value[1])
        if projection is None:
            continue
        matmul, output_add = projection
        weight = numpy_helper.to_array(index.initializers[matmul.input[1]]).astype(np.float64)  # [H, N]
        b_v = index.bias(value[0]).astype(np.float64)  # [H]
        b_o = index.bias(output_add).astype(np.float64)  # [N]
        if weight.shape != (b_v.size, b_o.size):
            continue
        folded = numpy_helper.from_array((b_o + b_v @ weight).astype(np.float32), f"{output_add.name}/with_value_bias")
        graph.initializer.append(folded)
        output_add.input[1] = folded.name
        removed.append(value[0])
    for add in removed:
        index.bypass(add)
    read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unread = [i for i in graph.initializer if i.name not in read]
    for initializer in unread:  # the biases folded away
        graph.initializer.remove(initializer)
    return len(removed)


def _attribute(node, name: str, default):
    from onnx import helper

    found = [a for a in node.attribute if a.name == name]
    return helper.get_attribute_value(found[0]) if found else default


def _composed(transposes: list) -> list[int]:
    """The one permutation a chain of Transposes applies (axis i of the result is axis
    order[i] of the input)."""
    order = [0, 1, 2, 3]
    for node in transposes:
        perm = list(_attribute(node, "perm", []))
        if len(perm) != 4:
            return []
        order = [order[i] for i in perm]
    return order


class _Index:
    """Producers, readers and constants of one graph, and the walks the fold needs."""

    def __init__(self, graph):
        self.graph = graph
        self.initializers = {i.name: i for i in graph.initializer}
        self.producers = {o: n for n in graph.node for o in n.output}
        self.readers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in graph.output}

    def only_reader(self, name: str):
        readers = self.readers.get(name, [])
        return readers[0] if len(readers) == 1 and name not in self.outputs else None

    def scores_above(self, softmax):
        """The one MatMul whose output reaches the softmax through scaling and masking ops
        alone, read by nothing else (else None)."""
        frontier, found, seen = [softmax.input[0]], [], set()
        while frontier:
            node = self.producers.get(frontier.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in SCORE_OPS:
                frontier += list(node.input)
            elif node.op_type == "MatMul":
                found.append(node)
        if len(found) != 1 or self.only_reader(found[0].output[0]) is None:
            return None
        return found[0]

    def bias(self, add) -> np.ndarray:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.initializers[add.input[1]])

    def bias_add_above(self, name: str):
        """(the Add of a 1-D constant bias to a weight MatMul's [batch, tokens, H] output,
        the permutation of [batch, tokens, heads, d] that reaches ``name``): through one
        Reshape that splits the heads, then Transposes, each read by the next alone; else None."""
        layout = []
        node = self.producers.get(name)
        while node is not None and node.op_type in LAYOUT_OPS and self.only_reader(node.output[0]) is not None:
            layout.append(node)
            node = self.producers.get(node.input[0])
        layout.reverse()  # top first
        if not layout or layout[0].op_type != "Reshape" or any(n.op_type != "Transpose" for n in layout[1:]):
            return None
        if node is None or node.op_type != "Add" or self.only_reader(node.output[0]) is None:
            return None
        constant = self.initializers.get(node.input[1])
        source = self.producers.get(node.input[0])
        if constant is None or len(constant.dims) != 1 or source is None or source.op_type != "MatMul" \
                or source.input[1] not in self.initializers:
            return None
        order = _composed(layout[1:])
        return (node, order) if order else None

    def projection_below(self, name: str, split: list[int]):
        """(the MatMul by a constant, its bias Add) that reads ``name`` back as
        [batch, tokens, H]: Transposes that undo ``split``, then one Reshape; else None."""
        layout = []
        node = self.only_reader(name)
        while node is not None and node.op_type in LAYOUT_OPS:
            layout.append(node)
            node = self.only_reader(node.output[0])
        if not layout or layout[-1].op_type != "Reshape" or any(n.op_type != "Transpose" for n in layout[:-1]):
            return None
        merged = _composed(layout[:-1])
        if not merged or [split[i] for i in merged] != [0, 1, 2, 3]:
            return None
        if node is None or node.op_type != "MatMul" or node.input[1] not in self.initializers:
            return None
        add = self.only_reader(node.output[0])
        if add is None or add.op_type != "Add" or add.input[1] not in self.initializers \
                or len(self.initializers[add.input[1]].dims) != 1:
            return None
        return node, add

    def bypass(self, add) -> None:
        """Readers of ``add``'s output read its data input instead; the Add goes."""
        for reader in self.readers.get(add.output[0], []):
            for position, name in enumerate(reader.input):
                if name == add.output[0]:
                    reader.input[position] = add.input[0]
        self.graph.node.remove(add)
