"""tflite-static-int8's per-op precision (formats/tflite/quantize.outlier_entries): the
matrix products whose inputs carry outlier channels quantize their rows at run time, each
attention output is calibrated int8 in and out, and nothing that only moves or scales values between
float ops is rounded to 8 bits on the way (the heads' Q, K, V, the scores' scaling, the
embedding sum, the file's output). On the real model each of those roundings cost retrieval
quality (tie-aware 0.97 -> 1.000 on tuning text, test_real_weights holds the floors)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration
SEQ = 16


@pytest.mark.parametrize("arch", ["bert", "squeezebert"])  # SqueezeBERT: convolutions behind transposes
def test_only_the_attention_outputs_are_calibrated_and_nothing_float_is_rounded_between(arch, tiny_checkpoint,
                                                                                        tiny_export, tmp_path):
    from pocketbert.formats.tflite.graph import subgraphs
    from pocketbert.quantize import quantize_model

    layers = 2
    checkpoint = tiny_checkpoint(arch, "sentence-embedding", layers=layers, seed=7)
    quantize_model(tiny_export(checkpoint, "tflite", seq_len=SEQ), "tflite-static-int8", tmp_path / "q",
                   keep_below_floor=True)  # random weights: the precision map is what is checked here
    graph = subgraphs(tmp_path / "q" / "model.tflite")[0]
    producers, kind = graph.producers(), graph.tensor_types
    products = [op for op in graph.operators if op.name in ("FULLY_CONNECTED", "CONV_2D")]

    def weights(op) -> str:
        weight = producers.get(op.inputs[1])
        return kind[weight.inputs[0]] if weight is not None and weight.name == "DEQUANTIZE" else kind[op.inputs[1]]

    calibrated = [op for op in products if kind[op.outputs[0]] == "INT8"]
    at_run_time = [op for op in products if kind[op.outputs[0]] == "FLOAT32" and weights(op) == "INT8"]
    in_float = [op for op in products if kind[op.outputs[0]] == "FLOAT32" and weights(op) == "FLOAT32"]
    assert len(calibrated) == layers  # the attention outputs
    assert len(at_run_time) == 5 * layers  # Q, K, V, the FFN input and output
    assert in_float == []
    assert all(kind[op.inputs[0]] == "INT8" for op in calibrated)

    def rounded_on_the_way(tensor: int) -> bool:
        """Whether ``tensor`` comes from a float op through a QUANTIZE -> ... -> DEQUANTIZE."""
        op = producers.get(tensor)
        while op is not None and op.name != "QUANTIZE":
            if op.name not in ("DEQUANTIZE", "RESHAPE", "TRANSPOSE"):
                return False
            op = producers.get(op.inputs[0])
        return op is not None

    readers = [op for op in graph.operators if op.name in ("BATCH_MATMUL", "SOFTMAX", "ADD", "GELU")]
    rounded = [(op.name, graph.tensor_names[t][-60:]) for op in readers for t in op.inputs if rounded_on_the_way(t)]
    assert rounded == []
    consumers = graph.consumers()
    outputs = [t for op in graph.operators for t in op.outputs if t not in consumers]
    assert outputs and not [t for t in outputs if rounded_on_the_way(t)]


def test_an_excluded_layer_stays_float_though_the_recipe_quantizes_its_kind_at_run_time(tiny_checkpoint, tiny_export,
                                                                                       tmp_path):
    """--exclude (and the scan's and --target's float blocks, which use it) comes after the
    recipe's own per-op entries: ai-edge-quantizer takes the last entry matching an op."""
    from pocketbert.formats.tflite.graph import subgraphs
    from pocketbert.quantize import quantize_model

    checkpoint = tiny_checkpoint("bert", "sentence-embedding", layers=2, seed=7)
    manifest = quantize_model(tiny_export(checkpoint, "tflite", seq_len=SEQ), "tflite-static-int8", tmp_path / "q",
                              exclude=("BertLayer_0/",), keep_below_floor=True)  # a LiteRT tensor-name pattern
    assert manifest.quantization["excluded_nodes"]
    graph = subgraphs(tmp_path / "q" / "model.tflite")[0]
    products = [op for op in graph.operators if op.name == "FULLY_CONNECTED"]
    float_weights = [op for op in products if graph.tensor_types[op.inputs[1]] == "FLOAT32"]
    assert len(float_weights) == 6  # layer 0's Q, K, V, attention output, FFN input and output
    assert all("Layer_0" in graph.tensor_names[op.outputs[0]] for op in float_weights)
