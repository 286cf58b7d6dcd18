"""SmoothQuant in LiteRT's dynamic recipe (formats/tflite/smoothing.py): the float file the
quantizer is given computes the same function, its quantized matrix products read their
activations divided by the divisors while every other reader (the residual ADDs) keeps the
activation itself, one divisor per weight across a bucketed file's signatures, and the
divisors stay float32 in the int8 file. (Its gain is on the real checkpoint: test_real_weights.)"""

from __future__ import annotations

import re

import numpy as np
import pytest

from pocketbert.export import ExportOptions, export_model
from pocketbert.formats.tflite import LiteRTOptions
from pocketbert.formats.tflite.graph import subgraphs
from pocketbert.formats.tflite.litert import interpreter_module
from pocketbert.formats.tflite.quantize import calibration_feed, recipe_entries
from pocketbert.formats.tflite.smoothing import SUFFIX
from pocketbert.formats.tflite.weight_passes import prepare_weights
from pocketbert.models.tokenizer import load_tokenizer
from pocketbert.quality import metrics as quality
from pocketbert.quantize import RECIPES, quantize_model
from pocketbert.quantize.calibration import calibration_inputs, corpus_lines

pytestmark = pytest.mark.integration
SEQ = 32
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def _outputs(path, feed: dict[str, list[dict]]) -> dict[str, list[np.ndarray]]:
    interpreter = interpreter_module().Interpreter(str(path))
    found = {}
    for signature, examples in feed.items():
        runner = interpreter.get_signature_runner(signature)
        found[signature] = [value for example in examples for value in runner(**example).values()]
    return found


# FULLY_CONNECTED; 1x1 CONV_2D; an MLM decoder whose weight is also the embedding lookup's table
@pytest.mark.parametrize("arch,task,buckets", [("bert", "text-classification", (16, 32)),
                                               ("squeezebert", "text-classification", ()),
                                               ("mobilebert", "fill-mask", ())])
def test_smoothing_keeps_the_float_function_and_divides_only_what_is_quantized(arch, task, buckets, tiny_checkpoint,
                                                                                 tmp_path):
    exported = tmp_path / "export"
    export_model(tiny_checkpoint(arch, task), None, "tflite", exported,
                 ExportOptions(seq_len=SEQ, format_options=LiteRTOptions(seq_lens=buckets)))
    source, tokenizer = exported / "model.tflite", load_tokenizer(exported)

    def feed_of(texts: list[str]) -> dict[str, list[dict]]:
        inputs = calibration_inputs(tokenizer, INPUTS, [(t, None) for t in texts], SEQ, True, dtype="int32",
                                    limit=len(texts))
        return calibration_feed(source, inputs)

    graph = subgraphs(source)[0]
    excluded = next(graph.tensor_names[op.outputs[0]] for op in graph.operators if op.name == "FULLY_CONNECTED")
    entries = recipe_entries(RECIPES["tflite-dynamic-int8"], [f"^{re.escape(excluded)};"])
    smoothed = tmp_path / "smoothed.tflite"
    details = prepare_weights(source, smoothed, feed_of(corpus_lines()[:48]), entries, alpha=0.5, error_feedback=False)

    held_out = feed_of(quality.default_texts()[:12])  # not the calibration text
    for signature, values in _outputs(source, held_out).items():
        for before, after in zip(values, _outputs(smoothed, held_out)[signature]):
            np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * np.abs(before).max())

    # per layer, BERT: the attention's input, its output projection's, the FFN's two; tiny
    # SqueezeBERT's convolutions are grouped (not one matrix each) but its post-attention one
    per_layer = {"bert": 4, "squeezebert": 1, "mobilebert": 4}[arch]
    graphs = subgraphs(smoothed)
    assert len(graphs) == max(len(buckets), 1)
    for graph in graphs:
        producers = graph.producers()
        divisions = [op for op in graph.operators if op.name == "MUL" and graph.tensor_names[op.outputs[0]].endswith(SUFFIX)]
        assert len(divisions) * len(graphs) == details["smoothed_activations"] >= per_layer * 2 * len(graphs)
        divided = {op.inputs[0] for op in divisions}
        for op in graph.operators:
            name = graph.tensor_names[op.outputs[0]]
            if name == excluded:
                assert producers[op.inputs[0]].name != "MUL"  # the --exclude'd product reads its input as it was
            elif op.inputs and op.inputs[0] in divided:
                assert op.name not in ("FULLY_CONNECTED", "CONV_2D"), f"{name} reads the undivided activation"
        if arch == "bert":  # a LayerNorm's output is also the next residual, which keeps it undivided
            assert any(op.name == "ADD" and set(op.inputs) & divided for op in graph.operators)


def test_the_recipe_keeps_the_divisors_float(tiny_checkpoint, tiny_export, tmp_path):
    exported = tiny_export(tiny_checkpoint("bert", "text-classification"), "tflite", seq_len=SEQ)
    manifest = quantize_model(exported, "tflite-dynamic-int8", tmp_path / "q")
    details = manifest.quantization["details"]
    assert details["smoothed_activations"] >= 8 and details["smoothing_alpha"] == 0.5
    graph = subgraphs(tmp_path / "q" / "model.tflite")[0]
    divisions = [op for op in graph.operators if op.name == "MUL" and graph.tensor_names[op.outputs[0]].endswith(SUFFIX)]
    assert len(divisions) == details["smoothed_activations"]
    assert {graph.tensor_types[op.inputs[1]] for op in divisions} == {"FLOAT32"}
    readers = {op.name for op in graph.operators if op.inputs and op.inputs[0] in {d.outputs[0] for d in divisions}}
    assert readers == {"FULLY_CONNECTED"}
    weights = {graph.tensor_types[op.inputs[1]] for op in graph.operators if op.name == "FULLY_CONNECTED"}
    assert weights == {"INT8"}
