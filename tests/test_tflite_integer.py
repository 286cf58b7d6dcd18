"""What the integer (NPU) recipes are built from: calibration text across lengths, ranges
over every example, the padding bias kept out of the scores' range, and a graph with no float
op: the lookups and the mask are integer GATHERs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pocketbert.formats import get_format
from pocketbert.formats.tflite import LiteRTOptions
from pocketbert.formats.tflite.graph import subgraphs
from pocketbert.formats.tflite.quantize import calibration_feed, recipe_entries
from pocketbert.formats.tflite.ranges import MASKED_MARGIN, calibrated_ranges
from pocketbert.models.tokenizer import load_tokenizer
from pocketbert.quantize import get_recipe, quantize_model
from pocketbert.quantize.calibration import calibration_inputs, read_texts

pytestmark = pytest.mark.integration
SEQ = 32
NPU = get_format("tflite").accelerator_recipes["npu"]


@pytest.fixture(scope="module")
def float_dir(tiny_checkpoint, tiny_export):
    """The float file ``export --accelerator npu`` quantizes."""
    return tiny_export(tiny_checkpoint("bert", "sentence-embedding"), "tflite", seq_len=SEQ,
                       format_options=LiteRTOptions(accelerator="npu"))


@pytest.fixture(scope="module")
def npu_file(float_dir, tmp_path_factory):
    """What ``--accelerator npu`` quantizes the float file to, and its manifest entry."""
    out = tmp_path_factory.mktemp("npu") / "npu"
    manifest = quantize_model(float_dir, NPU, out, keep_below_floor=True)
    return out / manifest.files["model"].path, manifest.files["model"]


def _feed(float_dir, texts):
    tokenizer = load_tokenizer(float_dir)
    inputs = calibration_inputs(tokenizer, ["input_ids", "attention_mask", "token_type_ids"], [(t, None) for t in texts],
                                SEQ, True, dtype="int32")
    return calibration_feed(float_dir / "model.tflite", inputs)


def test_the_default_calibration_text_reaches_very_short_texts_and_full_sequences(float_dir):
    texts = [text for text, _ in read_texts(None, mixed_lengths=True)][:100]  # what a 16-bit recipe runs
    pieces = [len(load_tokenizer(float_dir)(text)["input_ids"]) for text in texts]
    assert sum(n <= 5 for n in pieces) >= 10  # [CLS] + up to three words + [SEP]
    assert sum(n > 128 for n in pieces) >= 10  # past the default sequence length
    assert sum(5 < n <= 64 for n in pieces) >= 60  # mostly sentences


def test_ranges_hold_every_example_and_not_the_padding_bias(float_dir):
    """The quantizer's own calibrate() averages ranges (weight 0.95 on the past): one long
    text followed by 29 short ones kept about a quarter of the long text's range."""
    float_file = float_dir / "model.tflite"
    entries = recipe_entries(get_recipe(NPU), [])
    long_text = " ".join(read_texts(None)[0][0] for _ in range(4))
    first = calibrated_ranges(float_file, entries, _feed(float_dir, [long_text]), every_example=True)
    every = calibrated_ranges(float_file, entries, _feed(float_dir, [long_text] + ["Yes."] * 29), every_example=True)
    assert first.keys() == every.keys()
    for name, found in first.items():
        assert np.all(every[name]["max"] >= found["max"] - 1e-6) and np.all(every[name]["min"] <= found["min"] + 1e-6), name
    graph = subgraphs(float_file)[0]
    producers = graph.producers()
    softmax_inputs = [graph.tensor_names[op.inputs[0]] for op in graph.operators if op.name == "SOFTMAX"]
    assert softmax_inputs and all(producers[graph.tensor_names.index(n)].name == "ADD" for n in softmax_inputs)
    for name in softmax_inputs:  # the padded keys' -10000 saturates; the real scores keep the steps
        add = producers[graph.tensor_names.index(name)]
        scores = min(float(np.min(every[graph.tensor_names[t]]["min"])) for t in add.inputs
                     if float(np.min(every[graph.tensor_names[t]]["min"])) > -5000)
        assert float(np.min(every[name]["min"])) == pytest.approx(scores - MASKED_MARGIN, abs=1e-3), name


def test_the_npu_file_is_integer_from_the_ids_on_and_no_bigger_than_the_dynamic_file(float_dir, npu_file, tmp_path):
    """Layer norm's variance is a MUL in the graph exported for the NPU (LiteRT has no 16-bit
    SQUARED_DIFFERENCE; the default graph keeps it, in float, for the CPU recipes); the
    embedding tables and the mask's CAST, which the quantizer leaves float, are integer
    GATHERs (formats/tflite/integer_lookups.py): no op writes a float tensor, and the word
    table's int8 rows keep the file at the dynamic recipe's size."""
    graph = subgraphs(npu_file[0])[0]
    float_ops = {op.name for op in graph.operators if any(graph.tensor_types[t] == "FLOAT32" for t in op.outputs)}
    assert float_ops == set(), float_ops
    names = {op.name for op in graph.operators}
    assert "GATHER" in names and not names & {"EMBEDDING_LOOKUP", "SQUARED_DIFFERENCE", "DEQUANTIZE"}, names
    dynamic = quantize_model(float_dir, "tflite-dynamic-int8", tmp_path / "dynamic", keep_below_floor=True)
    assert npu_file[1].bytes <= 1.2 * dynamic.files["model"].bytes


def test_the_word_table_rows_come_back_within_half_a_step(float_dir, npu_file):
    """Per-row int8 codes times the row's int16 scale give the float table back, each value
    within half its row's step (plus the scale's own rounding); the 0/1 mask maps to 0 and 1."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(npu_file[0]))
    tensors = {t.name.decode(): t for t in model.subgraphs[0].tensors}

    def values(tensor, dtype):
        data = bytes(np.asarray(model.buffers[tensor.buffer].data, dtype=np.uint8))
        return np.frombuffer(data, dtype=dtype).reshape(tensor.shape), float(tensor.quantization.scale[0])

    codes_name = next(name for name in tensors if name.endswith("_codes") and "attention_mask" not in name)
    codes, _ = values(tensors[codes_name], np.int8)
    column, column_scale = values(tensors[codes_name.removesuffix("_codes") + "_row_scales"], np.int16)
    words = load_float_table(float_dir, codes.shape)
    step = np.abs(words).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(codes * (column * column_scale) - words) <= 0.5 * step + 127 * column_scale), codes_name
    mask, mask_scale = values(tensors["attention_mask_codes"], np.int16)
    np.testing.assert_allclose(mask * mask_scale, [0.0, 1.0], atol=mask_scale)


def load_float_table(float_dir, shape) -> np.ndarray:
    """The float file's constant of ``shape``: the word table the export wrote."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(float_dir / "model.tflite"))
    table = next(t for t in model.subgraphs[0].tensors if list(t.shape) == list(shape) and t.buffer
                 and model.buffers[t.buffer].data is not None)
    return np.frombuffer(bytes(np.asarray(model.buffers[table.buffer].data, dtype=np.uint8)), np.float32).reshape(shape)


def test_the_npu_file_reads_each_attention_context_on_8_bits_and_the_rest_on_16(npu_file):
    """Mixed a8/a16 (formats/tflite/mixed_activations.py): the projection reading each
    attention's context writes int8; Q/K/V, the FFN and GELU, which read or write outlier
    channels, keep int16; the manifest names the 8-bit ops."""
    graph = subgraphs(npu_file[0])[0]
    producers = graph.producers()
    out_types: dict[str, list[str]] = {}
    for op in graph.operators:
        if op.name == "FULLY_CONNECTED":
            feeder = producers.get(op.inputs[0])
            while feeder is not None and feeder.name in ("RESHAPE", "TRANSPOSE", "QUANTIZE"):
                feeder = producers.get(feeder.inputs[0])
            role = "context" if feeder is not None and feeder.name == "BATCH_MATMUL" else "other"
            out_types.setdefault(role, []).append(graph.tensor_types[op.outputs[0]])
    layers = 2  # the tiny config's
    assert out_types["context"] == ["INT8"] * layers, out_types
    assert set(out_types["other"]) == {"INT16"} and len(out_types["other"]) == 5 * layers, out_types
    assert {op.name for op in graph.operators if any(graph.tensor_types[t] == "INT8" for t in op.outputs)} >= {
        "FULLY_CONNECTED", "QUANTIZE"}
    bits = json.loads((npu_file[0].parent / "manifest.json").read_text())["quantization"]["details"]["activation_bits"]
    assert bits["eight_bit_ops"] == len(bits["ops"]) and sum(op["op"] == "FULLY_CONNECTED" for op in bits["ops"]) == layers
