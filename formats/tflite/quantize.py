"""int8 / int16 / float16 for LiteRT with ai-edge-quantizer on the converted .tflite.

Chosen over litert-torch's PT2E path, whose dynamic int8 files fail to load in 0.10.0
(EMBEDDING_LOOKUP with an asymmetric zero point; DESIGN.md). Excluding layers adds
``no_quantize`` entries for tensor-name patterns after the recipe's own.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from pocketbert.formats.tflite.litert import interpreter_module
from pocketbert.quiet import quiet_libraries
from pocketbert.contracts.recipe import Method, Recipe
from pocketbert.formats.tflite.float_io import float_outputs
from pocketbert.formats.tflite.graph import LAYOUT, before_layout
from pocketbert.formats.tflite.shared_constants import NAME_TYPE_BUG, separate_shared_constants
from pocketbert.formats.tflite.smoothing import FLOAT_MULS
from pocketbert.formats.tflite.weight_passes import prepare_weights

SIGNATURE = "serving_default"


def matching_tensors(model_path: Path, patterns: list[str]) -> dict[str, list[str]]:
    interpreter = interpreter_module().Interpreter(str(model_path))
    names = [t["name"] for t in interpreter.get_tensor_details()]
    return {p: [n for n in names if re.search(p, n)] for p in patterns}


def _graphs(model_path: Path):
    """Per subgraph (one per signature of a bucketed file, each with its own tensor names):
    (ops, tensor names by index, producer op of each tensor, consumer ops of each tensor)."""
    from pocketbert.formats.tflite.graph import subgraphs

    for graph in subgraphs(model_path):
        yield graph.operators, graph.tensor_names, graph.producers(), graph.consumers()


def _exact(name: str, operation: str, key: str = "no_quantize") -> dict:
    return {"regex": f"^{re.escape(name)};$", "operation": operation, "algorithm_key": key}


# int8 weights, float compute: what a dynamic-range FULLY_CONNECTED / EMBEDDING_LOOKUP gets
_WEIGHT_ONLY_INT8 = {"weight_tensor_config": {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE",
                                              "dtype": "INT"},
                     "compute_precision": "INTEGER", "explicit_dequantize": False}


def _dynamic(name: str, operation: str) -> dict:
    return {**_exact(name, operation, "min_max_uniform_quantize"), "op_config": _WEIGHT_ONLY_INT8}


def outlier_entries(model_path: Path) -> list[dict]:
    """Keep out of calibrated int8 what carries BERT's outlier channels, found by per-op
    error on real text (all-MiniLM-L6-v2, 240 held-out sentences): the FFN output (max 190
    against an RMS of 0.8) and the residual ADD it feeds (222), the LayerNorm that
    litert-torch decomposes into MEAN / SQUARED_DIFFERENCE (range 0..1325) / RSQRT / MUL /
    ADD, GELU and BATCH_MATMUL (XNNPACK takes neither in int8: they split the graph into 58
    partitions, which made static int8 slower than fp32). Fixing one of them at a time was
    not enough (pooled cosine 0.81 -> 0.86 -> 0.95 -> 0.99). The sentence pooling's sums
    too: one 8-bit range held a 3-token and a 128-token sum of the same channels badly
    (long texts' min 0.931 -> 0.989, typical 0.975 -> 0.984). The embedding table gets int8
    weights, which the static preset leaves float (58.7 MB). SqueezeBERT's graph hides the
    same ops behind layout ops (channels-first convolutions, its own LayerNorm class): found
    through RESHAPE/TRANSPOSE, its MiniLM form went from pooled cosine mean 0.83 (refused) to
    the BERT form's figures.

    The matrix products reading a LayerNorm's output (the heads' Q, K, V and the FFN input)
    and the FFN output take int8 weights with their inputs quantized per row at run time, as
    in the dynamic recipe: one calibrated range per tensor for the first cost tie-aware
    retention 0.97 -> 0.92; the FFN output, float until then, ran the file at 8.3 ms against
    the dynamic file's 4.4 (MiniLM, seq 128, one thread) for a short-text min of 0.996
    against 0.995 (tuning text). What only moves values between float ops stays float (the
    heads' layout, the embedding sum, the scores' scaling, which had been rounded to 8 bits
    between the float BATCH_MATMUL and the float mask ADD), and the file's output. With the
    recipe's smoothing and error feedback, all-MiniLM-L6-v2 on tuning text (the sentiment
    reviews) went from tie-aware 0.97, short-text min / mean 0.984 / 0.993 to 1.000 and
    0.995 / 0.999."""
    from pocketbert.models.sentence_embedding import SentencePooling

    pooling = rf".*\.{SentencePooling.__name__}_\w+;"
    entries = [{"regex": r"LayerNorm_\w+;\d*;$", "operation": "*", "algorithm_key": "no_quantize"},  # SqueezeBertLayerNorm too
               {"regex": pooling, "operation": "*", "algorithm_key": "no_quantize"},
               {"regex": ".*", "operation": "GELU", "algorithm_key": "no_quantize"},
               {"regex": ".*", "operation": "BATCH_MATMUL", "algorithm_key": "no_quantize"},
               {"regex": r"\.Embeddings_\w+;\d*;$", "operation": "*", "algorithm_key": "no_quantize"},
               {"regex": ".*", "operation": "EMBEDDING_LOOKUP", "algorithm_key": "min_max_uniform_quantize",
                "op_config": _WEIGHT_ONLY_INT8}]
    matrix_products = ("FULLY_CONNECTED", "CONV_2D")
    for ops, names, producers, consumers in _graphs(model_path):
        def exact(kept: list) -> list[dict]:
            return [_exact(names[o.outputs[0]], o.name) for o in kept]

        for op in ops:
            output = op.outputs[0]
            readers, after = _past_layout(output, consumers)
            feeder, before = before_layout(op.inputs[0], producers)
            if op.name == "ADD" and {r.name for r in readers} & {"SQUARED_DIFFERENCE", "MEAN"}:  # a residual into a LayerNorm
                entries.append(_exact(names[output], "ADD"))
            ffn_output = feeder is not None and feeder.name == "GELU"
            if op.name in matrix_products and (ffn_output or {r.name for r in readers} == {"GELU"}):  # or its input
                entries += exact([*before, *after]) + [_dynamic(names[output], op.name)]  # SqueezeBERT: transposed
            if op.name in LAYOUT and feeder is not None and feeder.name == "EMBEDDING_LOOKUP":  # into the float sum
                entries.append(_exact(names[output], op.name))
            if op.name == "BATCH_MATMUL":  # the heads' Q, K, V, and the scores' scaling
                entries += exact([*after, *(r for r in readers if r.name == "MUL")])
                for operand in op.inputs:
                    projection, heads = before_layout(operand, producers)
                    entries += exact(heads)
                    if projection is not None and projection.name in matrix_products:
                        _, reading = before_layout(projection.inputs[0], producers)
                        entries += exact(reading) + [_dynamic(names[projection.outputs[0]], projection.name)]
            if not consumers.get(output):  # the file's output: an 8-bit step there only loses
                entries.append((_dynamic if op.name in matrix_products else _exact)(names[output], op.name))
    return entries


def _past_layout(tensor: int, consumers: dict) -> tuple[list, list]:
    """The ops reading ``tensor`` once RESHAPE/TRANSPOSE are looked through (SqueezeBERT's
    channels-first convolutions and LayerNorms sit behind them), and the layout ops passed."""
    readers, layout, pending = [], [], list(consumers.get(tensor, []))
    while pending:
        op = pending.pop()
        if op.name in LAYOUT:
            layout.append(op)
            pending += consumers.get(op.outputs[0], [])
        else:
            readers.append(op)
    return readers, layout


def softmax_entries(model_path: Path) -> list[dict]:
    """``no_quantize`` for every SOFTMAX and the ADD that feeds it the masked scores (by its
    output tensor's exact name: ai-edge-quantizer matches "name;", an op's output names
    each followed by ";")."""
    from pocketbert.formats.tflite.graph import masked_score_adds, subgraphs

    entries = [{"regex": ".*", "operation": "SOFTMAX", "algorithm_key": "no_quantize"}]
    for graph in subgraphs(model_path):
        entries += [_exact(graph.tensor_names[add.outputs[0]], "ADD") for add in masked_score_adds(graph)]
    return entries


def recipe_entries(recipe: Recipe, exclude: list[str]) -> list[dict]:
    from ai_edge_quantizer import recipe as presets

    if recipe.method is Method.FLOAT16:
        entries = [{
            "regex": ".*", "operation": "*", "algorithm_key": "float_casting",
            "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                          "compute_precision": "FLOAT", "explicit_dequantize": True},
        }]
    else:
        entries = {
            (Method.DYNAMIC, "float32"): presets.dynamic_wi8_afp32,
            (Method.WEIGHT_ONLY, "float32"): presets.weight_only_wi8_afp32,
            (Method.STATIC, "int8"): presets.static_wi8_ai8,
            (Method.STATIC, "int16"): presets.static_wi8_ai16,
        }[recipe.method, recipe.activations]()
    return entries + exclusions(exclude)


def exclusions(patterns: list[str]) -> list[dict]:
    """``no_quantize`` for the tensor-name patterns the user excludes. ai-edge-quantizer takes
    the last entry that matches an op, so these go after every entry of ours."""
    return [{"regex": p, "operation": "*", "algorithm_key": "no_quantize"} for p in patterns]


def calibration_feed(source: Path, calibration: list[dict]) -> dict[str, list[dict]]:
    """The calibration inputs (padded to the longest length) by signature: a bucketed file
    calibrates each bucket on the same text, cut to its length."""
    from pocketbert.contracts.buckets import bucket_lengths, bucket_signature

    lengths = bucket_lengths(interpreter_module().Interpreter(str(source)).get_signature_list())
    if not lengths:
        return {SIGNATURE: calibration}
    return {bucket_signature(n): [{name: value[..., :n] for name, value in sample.items()} for sample in calibration]
            for n in lengths}


def _activation_template(entries: list[dict]) -> dict:
    """The recipe's entry that sets activations' bits (the one an 8-bit entry copies)."""
    return next(e for e in entries if e.get("op_config", {}).get("activation_tensor_config"))


def _float_variance(model_path: Path) -> bool:
    return any(op.name == "SQUARED_DIFFERENCE" for ops, *_ in _graphs(model_path) for op in ops)


def quantize_tflite(recipe: Recipe, source: Path, target: Path, calibration, exclude: list[str]) -> dict:
    from ai_edge_quantizer import quantizer

    from pocketbert.formats.tflite.integer_lookups import integer_lookups, lookup_ranges
    from pocketbert.formats.tflite.mixed_activations import context_projections, eight_bit_entries, precision_map
    from pocketbert.formats.tflite.ranges import calibrated_ranges

    if recipe.sixteen_bit_activations and not recipe.float_softmax and _float_variance(source):
        warnings.warn(f"{source.name}: LayerNorm's variance stays float in the integer file (LiteRT runs no 16-bit "
                      f"SQUARED_DIFFERENCE); export with --accelerator npu for one integer from the lookups on")
    own = recipe_entries(recipe, []) + (softmax_entries(source) if recipe.float_softmax else [])
    own += outlier_entries(source) if recipe.float_outliers else []
    entries = own + exclusions(exclude)
    feed = calibration_feed(source, calibration) if recipe.needs_calibration else None
    prepared, details = target.with_name("float.prepared.tflite"), {}
    separated = target.with_name("float.separated.tflite")
    try:
        alpha, error_feedback = recipe.params.smoothing_alpha, recipe.params.error_feedback
        if feed and (alpha or error_feedback):  # the quantizer's input: outliers moved, weights on their codes
            details |= prepare_weights(source, prepared, feed, entries, alpha=alpha, error_feedback=error_feedback)
            source, entries = prepared, [*entries, FLOAT_MULS] if alpha else entries
        with quiet_libraries(native_stderr=True):
            ranges = recipe.method is Method.STATIC and feed
            result = calibrated_ranges(source, entries, feed, recipe.length_mixed_calibration) if ranges else None
            if result and recipe.sixteen_bit_activations:
                result = lookup_ranges(source, result)
            if recipe.params.eight_bit_context_projections:
                eight = context_projections(source)
                entries = entries[:len(own)] + eight_bit_entries(eight, _activation_template(own)) + entries[len(own):]
                details["activation_bits"] = precision_map(eight)  # the user's exclusions still win (last)
            try:
                quantizer.Quantizer(str(source), entries).quantize(result).export_model(str(target), overwrite=True)
            except TypeError as exc:  # its duplicate-then-dequantize path (shared_constants.py)
                if NAME_TYPE_BUG not in str(exc) or not separate_shared_constants(source, separated, entries):
                    raise
                quantizer.Quantizer(str(separated), entries).quantize(result).export_model(str(target), overwrite=True)
    finally:
        prepared.unlink(missing_ok=True)
        separated.unlink(missing_ok=True)
    lookups = integer_lookups(target) if recipe.sixteen_bit_activations else []
    dequantized = float_outputs(target) if recipe.params.float_outputs else []
    return {"tool": "ai-edge-quantizer", "recipe_entries": entries, "dequantized_outputs": dequantized,
            "integer_lookups": lookups, **details}
