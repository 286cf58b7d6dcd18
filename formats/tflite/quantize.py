"""int8 / int16 / float16 for LiteRT with ai-edge-quantizer on the converted .tflite.

Chosen over litert-torch's PT2E path, whose dynamic int8 files fail to load in 0.10.0
(EMBEDDING_LOOKUP with an asymmetric zero point; DESIGN.md). Excluding layers adds
``no_quantize`` entries for tensor-name patterns after the recipe's own.
"""

from __future__ import annotations

import re
from pathlib import Path

from pocketbert.formats.tflite.litert import interpreter_module
from pocketbert.quiet import quiet_libraries
from pocketbert.runtime.recipe import Recipe
from pocketbert.formats.tflite.float_io import float_outputs

SIGNATURE = "serving_default"


def matching_tensors(model_path: Path, patterns: list[str]) -> dict[str, list[str]]:
    interpreter = interpreter_module().Interpreter(str(model_path))
    names = [t["name"] for t in interpreter.get_tensor_details()]
    return {p: [n for n in names if re.search(p, n)] for p in patterns}


def softmax_entries(model_path: Path) -> list[dict]:
    """``no_quantize`` for every SOFTMAX and the ADD that feeds it the masked scores (by its
    output tensor's exact name: ai-edge-quantizer matches "name;", an op's output names
    each followed by ";")."""
    interpreter = interpreter_module().Interpreter(str(model_path))
    ops = interpreter._get_ops_details()
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    producers = {output: op for op in ops for output in op["outputs"]}
    entries = [{"regex": ".*", "operation": "SOFTMAX", "algorithm_key": "no_quantize"}]
    for op in ops:
        feeder = producers.get(op["inputs"][0]) if op["op_name"] == "SOFTMAX" else None
        if feeder is not None and feeder["op_name"] == "ADD":
            entries.append({"regex": f"^{re.escape(names[feeder['outputs'][0]])};$", "operation": "ADD",
                            "algorithm_key": "no_quantize"})
    return entries


def recipe_entries(recipe: Recipe, exclude: list[str]) -> list[dict]:
    from ai_edge_quantizer import recipe as presets

    if recipe.method == "float16":
        entries = [{
            "regex": ".*", "operation": "*", "algorithm_key": "float_casting",
            "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                          "compute_precision": "FLOAT", "explicit_dequantize": True},
        }]
    else:
        entries = {
            ("dynamic", "float32"): presets.dynamic_wi8_afp32,
            ("weight_only", "float32"): presets.weight_only_wi8_afp32,
            ("static", "int8"): presets.static_wi8_ai8,
            ("static", "int16"): presets.static_wi8_ai16,
        }[recipe.method, recipe.activations]()
    return entries + [{"regex": p, "operation": "*", "algorithm_key": "no_quantize"} for p in exclude]


def quantize_tflite(recipe: Recipe, source: Path, target: Path, calibration, exclude: list[str]) -> dict:
    from ai_edge_quantizer import quantizer

    entries = recipe_entries(recipe, exclude) + (softmax_entries(source) if recipe.float_softmax else [])
    with quiet_libraries(native_stderr=True):
        qt = quantizer.Quantizer(str(source), entries)
        result = qt.calibrate({SIGNATURE: calibration}) if recipe.needs_calibration else None
        qt.quantize(result).export_model(str(target), overwrite=True)
    dequantized = float_outputs(target) if recipe.io == "float" else []
    return {"tool": "ai-edge-quantizer", "recipe_entries": entries, "dequantized_outputs": dequantized}
