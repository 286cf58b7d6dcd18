"""SqueezeBERT's pointwise convolutions as channels-last MatMuls (formats/onnx/conv_matmul.py):
exact in fp32, only pointwise Convs touched, graph outputs kept, and the dynamic int8 recipes
then run integer MatMuls instead of ConvInteger."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pocketbert.formats.onnx.conv_matmul import pointwise_convs_to_matmuls
from pocketbert.quantize import RECIPES, quantize_model

pytestmark = pytest.mark.integration

SEQ = 16
CHANNELS = 8


@pytest.fixture(scope="module")
def squeezebert_export(tiny_checkpoint, tiny_export):
    return tiny_export(tiny_checkpoint("squeezebert", "text-classification", seed=7), "onnx", seq_len=SEQ)


def _padded_inputs(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    """Right-padded batch of mixed lengths (full, shorter, 2 tokens)."""
    rng = np.random.default_rng(0)
    mask = np.zeros((3, SEQ), np.int64)
    for row, length in enumerate([SEQ, SEQ - 5, 2]):
        mask[row, :length] = 1
    values = {"input_ids": rng.integers(1, 1000, (3, SEQ)) * mask, "attention_mask": mask,
              "token_type_ids": np.zeros_like(mask)}
    return {i.name: values[i.name] for i in session.get_inputs()}


def _session(model) -> ort.InferenceSession:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


def test_the_rewritten_squeezebert_computes_the_same_logits(squeezebert_export):
    original = onnx.load(str(squeezebert_export / "model.onnx"))
    convs = sum(node.op_type == "Conv" for node in original.graph.node)
    rewritten = onnx.load(str(squeezebert_export / "model.onnx"))
    counts = pointwise_convs_to_matmuls(rewritten)
    onnx.checker.check_model(rewritten)
    assert convs == 2 * 6 and counts["convs_rewritten"] == convs and counts["convs_left"] == 0
    assert counts["transpose_pairs_cancelled"] > 0 and counts["duplicates_merged"] > 0  # q, k, v share a layout
    assert not [node for node in rewritten.graph.node if node.op_type == "Conv"]
    assert [o.name for o in rewritten.graph.output] == [o.name for o in original.graph.output]
    want, got = _session(original), _session(rewritten)
    feed = _padded_inputs(want)
    for a, b in zip(want.run(None, feed), got.run(None, feed)):
        np.testing.assert_allclose(b, a, atol=1e-5)


def _three_convs(path=None) -> onnx.ModelProto:
    """x [1, 8, S] -> a kernel-3 Conv ("wide"), a grouped pointwise Conv with bias ("point") and
    a plain pointwise Conv ("kept"), each straight to a graph output."""
    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    nodes = [helper.make_node("Conv", ["x", "w_wide"], ["y_wide"], name="wide", kernel_shape=[3], pads=[1, 1]),
             helper.make_node("Conv", ["x", "w_point", "b_point"], ["y_point"], name="point", group=2, kernel_shape=[1]),
             helper.make_node("Conv", ["x", "w_kept"], ["y_kept"], name="kept", kernel_shape=[1])]
    graph = helper.make_graph(
        nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, "sequence"])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, width, "sequence"])
         for name, width in (("y_wide", 6), ("y_point", 6), ("y_kept", 4))],
        [weight("w_wide", 6, CHANNELS, 3), weight("w_point", 6, CHANNELS // 2, 1), weight("b_point", 6),
         weight("w_kept", 4, CHANNELS, 1)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if path is not None:
        onnx.save(model, str(path))
    return model


def test_only_pointwise_convs_not_excluded_are_rewritten_and_outputs_keep_their_names():
    original = _three_convs()
    model = _three_convs()
    counts = pointwise_convs_to_matmuls(model, excluded={"kept"})
    onnx.checker.check_model(model)
    assert counts["convs_rewritten"] == 1 and counts["convs_left"] == 2
    assert sorted(node.name for node in model.graph.node if node.op_type == "Conv") == ["kept", "wide"]
    assert [o.name for o in model.graph.output] == ["y_wide", "y_point", "y_kept"]
    x = np.random.default_rng(1).normal(0, 1, (1, CHANNELS, 10)).astype(np.float32)
    for a, b in zip(_session(original).run(None, {"x": x}), _session(model).run(None, {"x": x})):
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_a_model_without_pointwise_convs_is_left_as_it_was():
    model = _three_convs()
    before = model.SerializeToString()
    counts = pointwise_convs_to_matmuls(model, excluded={"point", "kept"})
    assert counts["convs_rewritten"] == 0 and model.SerializeToString() == before


def test_the_recipe_quantizes_pointwise_convs_as_matmuls_and_others_as_u8_conv_integer(tmp_path):
    from pocketbert.formats.onnx.quantize import quantize_onnx

    _three_convs(tmp_path / "float.onnx")
    details = quantize_onnx(RECIPES["onnx-dynamic-int8"], tmp_path / "float.onnx", tmp_path / "int8.onnx", None,
                            ["kept"])
    assert details["convolutions_as_matmuls"]["convs_rewritten"] == 1
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    by_name = {node.name: node for node in graph.node}
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    assert by_name["kept"].op_type == "Conv"  # excluded: still float, still a Conv
    integer_convs = [node for node in graph.node if node.op_type == "ConvInteger"]
    assert len(integer_convs) == 1 and weights[integer_convs[0].input[1]].dtype == np.uint8  # "wide"
    assert sum(node.op_type == "MatMulIntegerToFloat" for node in graph.node) == 2  # "point"'s two groups


@pytest.mark.parametrize("name", [r for r in RECIPES if r.startswith("onnx-dynamic")])
def test_dynamic_int8_squeezebert_has_no_conv_integer_and_stays_close(name, squeezebert_export, tmp_path):
    manifest = quantize_model(squeezebert_export, name, tmp_path / "int8")
    assert manifest.quantization["details"]["convolutions_as_matmuls"]["convs_rewritten"] == 2 * 6
    ops = {node.op_type for node in onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.node}
    assert not ops & {"Conv", "ConvInteger"}
    assert ops & {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
    figures = manifest.files["model"].agreement_with_float["logits"]
    assert figures["cosine"] > 0.99 and figures["top1_agreement"] > 0.8, figures
