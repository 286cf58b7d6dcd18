"""Error-feedback weight codes in the LiteRT recipes (formats/tflite/error_feedback.py): the
float file handed to ai-edge-quantizer carries weights already on their int8 grid, and the
quantizer must give back exactly those codes, or the fitting is lost in a second rounding."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from pocketbert.formats.tflite.error_feedback import QMAX
from pocketbert.formats.tflite import LiteRTParams
from pocketbert.formats.tflite.quantize import calibration_feed, quantize_tflite, recipe_entries
from pocketbert.formats.tflite.weight_passes import prepare_weights
from pocketbert.models.tokenizer import load_tokenizer
from pocketbert.quantize import RECIPES, quantize_model
from pocketbert.quantize.calibration import calibration_inputs, corpus_lines

pytestmark = pytest.mark.integration
SEQ = 32


def _matrix_weights(path, outputs: list | None = None, ungrouped: set | None = None) -> dict[str, np.ndarray]:
    """name -> the constant weight [N, K] of every FULLY_CONNECTED and CONV_2D ([O, 1, 1, I]
    as [O, I]), as stored (float or int8); ``outputs`` collects each one's output tensor name,
    ``ungrouped`` the names of those whose K is the whole input row (not a grouped slice)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    kinds = {i for i, c in enumerate(model.operatorCodes) if max(c.builtinCode, c.deprecatedBuiltinCode) in
             (schema.BuiltinOperator.FULLY_CONNECTED, schema.BuiltinOperator.CONV_2D)}
    types = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT8: np.int8}
    found = {}
    graph = model.subgraphs[0]
    for op in (op for op in graph.operators if op.opcodeIndex in kinds):
        tensor = graph.tensors[op.inputs[1]]
        data = model.buffers[tensor.buffer].data
        if data is not None and len(data) and tensor.type in types:
            name = tensor.name.decode()
            found[name] = np.frombuffer(bytes(data), types[tensor.type]).reshape(tensor.shape[0], -1)
            if outputs is not None:
                outputs.append(graph.tensors[op.outputs[0]].name.decode())
            if ungrouped is not None and tensor.shape[-1] == graph.tensors[op.inputs[0]].shape[-1]:
                ungrouped.add(name)
    return found


@pytest.mark.full_calibration  # the recipe reads the whole corpus
@pytest.mark.parametrize("arch", ["bert", "squeezebert"])  # FULLY_CONNECTED; SqueezeBERT's 1x1 CONV_2D
def test_the_quantizer_gives_back_the_fitted_codes(arch, tiny_checkpoint, tiny_export, tmp_path):
    exported = tiny_export(tiny_checkpoint(arch, "text-classification"), "tflite", seq_len=SEQ)
    source = exported / "model.tflite"
    tokenizer = load_tokenizer(exported)
    examples = [(line, None) for line in corpus_lines()[:64]]
    feed = calibration_feed(source, calibration_inputs(tokenizer, ["input_ids", "attention_mask", "token_type_ids"],
                                                       examples, SEQ, True, dtype="int32", limit=64))
    outputs: list[str] = []
    matrices: set[str] = set()  # SqueezeBERT's grouped convolutions are not one matrix each: left as they are
    before = _matrix_weights(source, outputs, matrices)
    excluded = next(iter(before))  # --exclude'd: the quantizer keeps it float, so its weights stay as they were
    entries = recipe_entries(RECIPES["tflite-dynamic-int8"], [f"^{re.escape(outputs[0])};"])
    details = prepare_weights(source, tmp_path / "fitted.tflite", feed, entries, alpha=0.0, error_feedback=True)
    fitted = _matrix_weights(tmp_path / "fitted.tflite")
    chosen = matrices - {excluded}
    assert details["error_feedback_weights"] == len(chosen) >= 3
    # tiny SqueezeBERT: groups of 4 but in its post-attention convolutions, which are fitted
    assert (arch == "squeezebert") == (len(matrices) < len(before)) == any("Conv1d" in name for name in chosen)
    for name, weight in fitted.items():
        if name not in chosen:
            np.testing.assert_array_equal(weight, before[name])
            continue
        step = np.abs(weight).max(axis=1, keepdims=True) / QMAX  # [N, 1]
        codes = weight / step
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)  # on the grid
        assert (np.abs(np.round(codes)).max(axis=1) == QMAX).all()  # each channel's largest kept at 127
        np.testing.assert_allclose(step, np.abs(before[name]).max(axis=1, keepdims=True) / QMAX, rtol=1e-6)
        nearest = np.round(before[name] / step)
        assert (np.round(codes) != nearest).mean() > 0.01  # chosen codes, not the nearest ones

    # the quantizer, rounding to nearest, finds these codes again
    plain = dataclasses.replace(RECIPES["tflite-dynamic-int8"], calibration=None, params=LiteRTParams())
    quantize_tflite(plain, tmp_path / "fitted.tflite", tmp_path / "q.tflite", None, [])
    stored = _matrix_weights(tmp_path / "q.tflite")
    for name in chosen:
        step = np.abs(fitted[name]).max(axis=1, keepdims=True) / QMAX
        np.testing.assert_array_equal(stored[name], np.round(fitted[name] / step).astype(np.int8))

    manifest = quantize_model(exported, "tflite-dynamic-int8", tmp_path / "recipe")
    assert manifest.quantization["details"]["error_feedback_weights"] == len(matrices)
    assert manifest.quantization["calibration"]["examples"] > 100  # error feedback reads the whole corpus


def test_after_smoothing_the_codes_fit_the_smoothed_rows(tiny_checkpoint, tiny_export, tmp_path):
    """prepare_weights runs calibration once: error feedback after smoothing takes the Gram
    matrix of the divided rows as D X^T X D. The codes must be the ones a second calibration
    run on the smoothed file would give (a D applied the wrong way round moves many)."""
    from ai_edge_litert.tools import flatbuffer_utils

    from pocketbert.formats.tflite.error_feedback import fit_weights
    from pocketbert.formats.tflite.graph import write_in_place
    from pocketbert.formats.tflite.matrix_inputs import input_statistics, matrix_inputs
    from pocketbert.formats.tflite.smoothing import FLOAT_MULS

    exported = tiny_export(tiny_checkpoint("bert", "text-classification"), "tflite", seq_len=SEQ)
    source, tokenizer = exported / "model.tflite", load_tokenizer(exported)
    examples = [(line, None) for line in corpus_lines()[:64]]
    feed = calibration_feed(source, calibration_inputs(tokenizer, ["input_ids", "attention_mask", "token_type_ids"],
                                                       examples, SEQ, True, dtype="int32", limit=64))
    entries = recipe_entries(RECIPES["tflite-dynamic-int8"], [])
    one_run = tmp_path / "one-run.tflite"
    details = prepare_weights(source, one_run, feed, entries, alpha=0.5, error_feedback=True)
    smoothed = tmp_path / "smoothed.tflite"
    prepare_weights(source, smoothed, feed, entries, alpha=0.5, error_feedback=False)

    model = flatbuffer_utils.read_model(str(smoothed))  # the second run, on the smoothed file itself
    inputs = matrix_inputs(model, [*entries, FLOAT_MULS])
    grams = input_statistics(model, smoothed, feed, inputs, grams=True).grams
    assert fit_weights(model, {b: g for b, g in grams.items() if b not in inputs.fixed}) \
        == details["error_feedback_weights"] >= 8
    write_in_place(model, tmp_path / "two-runs.tflite", ".fitted")

    expected, found = _matrix_weights(tmp_path / "two-runs.tflite"), _matrix_weights(one_run)
    assert expected.keys() == found.keys()
    for name, weight in expected.items():
        step = np.abs(weight).max(axis=1, keepdims=True) / QMAX
        differ = (np.round(weight / step) != np.round(found[name] / step)).mean()
        # measured: at most 0.4% (the Gram sums' float rounding, which the sequential choices
        # carry on); with D the wrong way round 30%
        assert differ < 0.02, f"{name}: {differ:.2%} of the codes differ"
