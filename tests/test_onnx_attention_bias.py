"""Key and value biases out of attention (formats/onnx/attention_bias.py): on every
architecture's exported graph the float function must not move (padding included), and the
Adds must really go; a graph where softmax does not cancel the bias keeps it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pocketbert.formats.onnx.attention_bias import fold_attention_biases
from pocketbert.formats.onnx.conv_matmul import pointwise_convs_to_matmuls
from pocketbert.models import ARCHITECTURES

pytestmark = pytest.mark.integration


def _outputs(model: onnx.ModelProto) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for given in session.get_inputs():
        if "mask" in given.name:
            value = np.ones((2, 24)); value[1, 15:] = 0  # the second row is padded
        elif "type" in given.name:
            value = np.zeros((2, 24))
        else:
            value = rng.integers(5, 500, (2, 24))
        feeds[given.name] = value.astype(np.int64)
    return session.run(None, feeds)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architectures_attention_loses_its_key_and_value_bias_adds_exactly(arch, tiny_checkpoint, tiny_export):
    exported = tiny_export(tiny_checkpoint(arch, "text-classification"), "onnx", seq_len=24)
    model = onnx.load(str(exported / "model.onnx"))
    pointwise_convs_to_matmuls(model)  # as the dynamic recipes see SqueezeBERT's graph
    before = _outputs(model)
    adds = sum(node.op_type == "Add" for node in model.graph.node)
    folded = fold_attention_biases(model.graph)
    # SqueezeBERT's attention reads its convolutions in channels-first layout (grouped:
    # Split -> MatMuls -> Concat -> Transpose), which the fold does not take: it is left whole
    expected = 0 if arch == "squeezebert" else 2 * 2  # 2 layers' key and value biases
    assert folded == expected, f"{arch}: {folded} bias Adds folded"
    assert sum(node.op_type == "Add" for node in model.graph.node) == adds - folded
    onnx.checker.check_model(model)
    for got, want in zip(_outputs(model), before):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    read = {name for node in model.graph.node for name in node.input}
    assert [i.name for i in model.graph.initializer if i.name not in read] == []


def test_a_bias_softmax_does_not_cancel_stays(tmp_path):
    """Softmax over the first axis of the scores (the queries): the key bias now changes
    which key wins, and the graph must keep it."""
    rng = np.random.default_rng(1)
    weights = {name: numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)
               for name, shape in (("wq", (8, 8)), ("wk", (8, 8)), ("bk", (8,)))}
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]),
             helper.make_node("MatMul", ["x", "wk"], ["k0"]),
             helper.make_node("Add", ["k0", "bk"], ["k"]),
             helper.make_node("Reshape", ["k", "heads"], ["k_split"]),
             helper.make_node("Transpose", ["k_split"], ["k_t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["q", "heads"], ["q_split"]),
             helper.make_node("Transpose", ["q_split"], ["q_h"], perm=[0, 2, 1, 3]),
             helper.make_node("MatMul", ["q_h", "k_t"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["p"], axis=2)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 8])],
                              [helper.make_tensor_value_info("p", TensorProto.FLOAT, None)],
                              [*weights.values(), numpy_helper.from_array(np.array([1, 5, 2, 4], np.int64), "heads")])
    assert fold_attention_biases(graph) == 0
    assert [n.op_type for n in graph.node].count("Add") == 1
