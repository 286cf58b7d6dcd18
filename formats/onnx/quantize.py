"""int8 for ONNX Runtime with onnxruntime.quantization: dynamic (weights int8, activations
at run time) and static QDQ calibrated with MinMax, Entropy or Percentile."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pocketbert.errors import PocketbertError, first_line
from pocketbert.formats.onnx.attention_bias import fold_attention_biases
from pocketbert.formats.onnx.conv_matmul import pointwise_convs_to_matmuls
from pocketbert.formats.onnx.graph import (activation_products, attention_output_projections, ffn_projections,
                                           lookup_tables, softmax_nodes, weight_matmuls)
from pocketbert.formats.onnx.per_token import quantize_per_token
from pocketbert.formats.onnx.smoothing import calibration_statistics
from pocketbert.formats.onnx.tables import quantize_tables
from pocketbert.quiet import quiet_libraries
from pocketbert.contracts.recipe import Method, Recipe


# onnxruntime's calibrators keep every input and output of every MatMul of every example in
# memory, excluded or not (BERT-base at seq 128: ~100 MB an example; with 1.32's
# CalibMaxIntermediateOutputs the min/max calibrator drops what it collected unmeasured), and
# the histogram calibrators more: the first examples of the length-mixed text go to them, while
# the run-time rows' statistics (per_token.py) see every example
CALIBRATOR_EXAMPLES = {"minmax": 100, "entropy": 16, "percentile": 16}


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of input dicts."""

    def __init__(self, inputs: list[dict[str, np.ndarray]]):
        self.items = iter(inputs)

    def get_next(self):
        return next(self.items, None)

    def rewind(self):  # pragma: no cover - not used by quantize_static's single pass
        pass


def quantize_onnx(recipe: Recipe, source: Path, target: Path, calibration, excluded_nodes: list[str]) -> dict:
    import onnx

    # the dynamo exporter's value_info can disagree with onnx's own shape inference, which
    # the quantizer runs (seen on a 2-label classifier): let it infer shapes afresh
    graph = onnx.load(str(source))
    del graph.graph.value_info[:]
    kept_float = softmax_nodes(graph.graph) if recipe.float_softmax else []
    excluded_nodes = sorted({*excluded_nodes, *kept_float})
    details = {"tool": "onnxruntime.quantization", "float_softmax_nodes": kept_float}
    params = recipe.params
    if recipe.method is Method.DYNAMIC or params.per_token:
        # SqueezeBERT's pointwise convolutions as MatMuls: integer MatMul kernels instead of
        # ConvInteger (paper size, seq 128, 1 thread: per-token 31.9 -> 26.7 ms, per-tensor
        # 33.0 -> 24.0, per-channel 32.2 -> 24.9); excluded convolutions stay float Convs
        details["convolutions_as_matmuls"] = pointwise_convs_to_matmuls(graph, excluded=excluded_nodes)
    if params.per_token:  # float-exact: key and value bias Adds out of attention
        details["attention_biases_folded"] = fold_attention_biases(graph.graph)
        details["row_scaled_tables"] = quantize_tables(graph.graph, set(excluded_nodes))
    at_run_time = _rows_at_run_time(graph.graph, excluded_nodes) if recipe.method is Method.STATIC and params.per_token else []
    if at_run_time:
        details["quantized_at_run_time"] = at_run_time
    staged = target.with_name("float.staged.onnx")
    onnx.save(graph, str(staged))
    onnxruntime_out = target.with_name("onnxruntime.staged.onnx") if params.per_token else target
    try:  # quiet: advice on the root logger ("consider pre-processing"), calibrators' prints
        with quiet_libraries():
            convolutions = [n.name for n in graph.graph.node if n.op_type == "Conv" and n.name not in excluded_nodes]
            calibrated_excluded = sorted({*excluded_nodes, *at_run_time, *activation_products(graph.graph)}) \
                if at_run_time else excluded_nodes
            details |= _quantize(recipe, staged, onnxruntime_out, calibration, calibrated_excluded, convolutions) or {}
        if params.per_token:
            took = ["attention outputs, calibrated"] * bool(at_run_time) + ["convolutions"] * bool(convolutions)
            details["tool"] = "pocketbert per-token MatMuls and row-scaled tables" + (
                f" + onnxruntime.quantization ({', '.join(took)})" if took else "")
            wants_ranges = (params.smoothing_alpha or params.shift_one_signed or params.error_feedback) and calibration
            seen = calibration_statistics(staged, calibration, grams=params.error_feedback) if wants_ranges else None
            details |= quantize_per_token(onnxruntime_out, target, weight_bits=7 if params.reduce_range else 8,
                                          asymmetric=params.asymmetric, excluded=set(excluded_nodes),
                                          ranges=seen.ranges if seen else None, grams=seen.grams if seen else None,
                                          alpha=params.smoothing_alpha, shift_one_signed=params.shift_one_signed,
                                          per_tensor=_even_rows(seen, params.per_tensor_above_db))
    except (ValueError, RuntimeError) as exc:  # e.g. the entropy calibrator's histogram on a degenerate range
        raise PocketbertError(f"onnxruntime could not apply {recipe.name}: {first_line(exc)}") from None
    finally:
        for scratch in {staged, onnxruntime_out} - {target}:
            scratch.unlink(missing_ok=True)
    return details


def _even_rows(seen, above_db: float) -> set[str]:
    """The activations one uint8 range per tensor keeps at ``above_db`` or more signal over
    rounding noise on the calibration text (no outlier channel or row stretching the range:
    a Gaussian's +-4.5 sigma over 255 codes is ~40 dB). Per-token rows buy such an activation
    nothing worth ~7 elementwise ops; onnxruntime's fused kernel quantizes it inside the product."""
    if seen is None or not above_db:
        return set()
    return {name for name, one_range in seen.one_range.items() if one_range.snr_db >= above_db}


def _rows_at_run_time(graph, excluded_nodes: list[str]) -> list[str]:
    """Static recipes with per-token rows: the constant-weight MatMuls whose input carries the
    residual stream's outlier channels (Q, K, V and the FFN input read a LayerNorm; the FFN
    output reads GELU's long tail) get one scale per token at run time, as in the dynamic
    recipe; only each attention's output projection reads a calibrated int8 range. On the
    real MiniLM's MobileBERT form a calibrated range on those inputs lost short texts (held-out
    pooled cosine min 0.979, Q/K/V calibrated and the FFN float)."""
    calibrated = set(attention_output_projections(graph)) | set(excluded_nodes)
    return [n.name for n in weight_matmuls(graph) if n.name not in calibrated]


def _quantize(recipe: Recipe, source: Path, target: Path, calibration, excluded_nodes: list[str],
              convolutions: list[str]) -> dict | None:
    """onnxruntime.quantization's part; what it returns joins the manifest's details."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    weight_type = QuantType.QUInt8 if recipe.weights == "uint8" else QuantType.QInt8
    if recipe.method is Method.DYNAMIC:
        if recipe.params.per_token:
            # the per-token rewrite takes every constant MatMul, quantize_tables the embedding
            # tables: onnxruntime only the convolutions the MatMul rewrite left
            staged = source
        else:
            staged = target.with_name("convolutions.staged.onnx") if convolutions else target
            quantize_dynamic(str(source), str(staged), weight_type=weight_type, per_channel=recipe.per_channel,
                             reduce_range=recipe.params.reduce_range, nodes_to_exclude=[*excluded_nodes, *convolutions])
        if convolutions:
            # Convs the MatMul rewrite left (not pointwise): onnxruntime's ConvInteger is fast
            # for u8 x u8 only: with int8 weights SqueezeBERT's 1x1 convolutions took 215 of
            # 237 ms (8x their 27 ms with u8 weights, 1 thread, measured), which made the int8
            # file 3x slower than fp32
            try:
                quantize_dynamic(str(staged), str(target), weight_type=QuantType.QUInt8, per_channel=recipe.per_channel,
                                 reduce_range=recipe.params.reduce_range, nodes_to_exclude=excluded_nodes,
                                 op_types_to_quantize=["Conv"])
            finally:
                if staged != source:
                    staged.unlink(missing_ok=True)
        elif staged == source:
            shutil.copyfile(source, target)
    elif recipe.sixteen_bit_activations:
        return _quantize_for_qnn(source, target, calibration, excluded_nodes)
    else:
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[recipe.calibration]
        examples = calibration[:CALIBRATOR_EXAMPLES[recipe.calibration]]
        quantize_static(
            str(source), str(target), _Reader(examples), quant_format=QuantFormat.QDQ,
            per_channel=recipe.per_channel, reduce_range=recipe.params.reduce_range, weight_type=QuantType.QInt8,
            # uint8 activations: onnxruntime's x86 integer kernels (QLinearMatMul, and
            # MatMulIntegerToFloat for a float output) take u8 x s8 only; with int8 activations
            # every DequantizeLinear -> MatMul stayed a float MatMul behind a quantize/dequantize
            # pair, which made the static file slower than fp32
            activation_type=QuantType.QUInt8 if recipe.activations == "uint8" else QuantType.QInt8,
            calibrate_method=method, nodes_to_exclude=excluded_nodes,
            # with per-token rows only the projections are int8: Add and LayerNorm inputs carry
            # the residual stream's outliers (MinMax over them: pooled cosine 0.83)
            op_types_to_quantize=["MatMul"] if recipe.params.per_token else None,
        )
        return {"calibrator_examples": len(examples)}


def _quantize_for_qnn(source: Path, target: Path, calibration, excluded_nodes: list[str]) -> dict[str, list[str]]:
    """Every op QDQ with uint16 activations, as onnxruntime's QNN execution provider takes them:
    onnxruntime's own QNN preparation (Erf sequences fused into Gelu, ReduceL2 into
    LpNormalization) and QNN configuration (the per-op overrides QNN needs; 16-bit Q/DQ in the
    com.microsoft domain below opset 21). MinMax over every calibration example: with 65536
    codes a range should hold the longest text's extremes, not clip them.

    Weights are uint8 except the feed-forward projections', which get 16 bits: QNN takes
    MatMul weights per tensor only, and one 8-bit scale over a trained FFN's outlier rows
    loses the model (real MiniLM, held-out text, seq 128, short-text pooled cosine min / tie-
    aware retention: all uint8 0.935 / 0.941; FFN output 16-bit 0.991 / 0.997; both FFN
    projections 0.996 / 1.000; every weight 16-bit 0.999 / 1.000 at +8% size). HTP's MatMul
    runs 16 x 16 already (the attention products read two activations).

    The embedding tables take 8 bits, where QNN's configuration gave them the activations'
    16 (a Gather's table is an input to it, not a weight): one uint8 range per table, which
    the lookup's output keeps (a Gather moves codes, QNN wants its input's encoding on its
    output). The word table is most of the file: 41.8 -> 29.8 MB, the held-out figures above
    unchanged in all four forms (short min 0.996, tie-aware 0.993-1.000). Returns the
    weights given 16 bits and the 8-bit tables."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

    graph = onnx.load(str(source), load_external_data=False).graph
    constants = {init.name for init in graph.initializer}
    ffn = {name for names in ffn_projections(graph).values() for name in names} - set(excluded_nodes)
    wide = sorted({n.input[1] for n in graph.node if n.name in ffn and n.input[1] in constants})
    tables = lookup_tables(graph)
    overrides = {**{name: [{"quant_type": QuantType.QUInt16}] for name in wide},
                 **{name: [{"quant_type": QuantType.QUInt8}] for name in tables}}
    prepared = target.with_name("qnn.staged.onnx")
    try:
        float_file = prepared if qnn_preprocess_model(str(source), str(prepared)) else source
        config = get_qnn_qdq_config(str(float_file), _Reader(calibration), calibrate_method=CalibrationMethod.MinMax,
                                    activation_type=QuantType.QUInt16, weight_type=QuantType.QUInt8,
                                    init_overrides=overrides or None,
                                    nodes_to_exclude=excluded_nodes or None)
        quantize(str(float_file), str(target), config)
    finally:
        prepared.unlink(missing_ok=True)
    return {"sixteen_bit_weights": wide, "eight_bit_tables": tables}
