"""Error-feedback weight codes for the LiteRT recipes (formats/gptq.py).

ai-edge-quantizer rounds each weight of the float file to its nearest int8 code, on a
per-channel grid it derives from the channel's largest weight. So the float file it is given
carries weights already moved onto that grid by error feedback, the largest weight of every
channel kept at +-127: the quantizer derives the same grid and returns exactly the chosen
codes. The kernels and the file layout are the quantizer's own; only which code each weight
gets changes. The Gram matrices come from the float file itself, run on the calibration text
with every tensor kept (the FULLY_CONNECTED and 1x1 CONV_2D inputs over real tokens).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketbert.formats.gptq import GramAccumulator, real_token_rows, round_with_error_feedback

QMAX = 127  # ai-edge-quantizer's symmetric int8 weights: step = largest |weight| / 127
MATRIX_PRODUCTS = ("FULLY_CONNECTED", "CONV_2D")  # the ops whose weights are fitted (CONV_2D: 1x1 only)


def fit_weights(source: Path, target: Path, feed: dict[str, list[dict]], entries: list[dict]) -> dict:
    """Write ``source`` to ``target`` with every matrix weight (FULLY_CONNECTED, 1x1 CONV_2D)
    that calibration reached and the quantizer's ``entries`` quantize moved onto its int8
    grid by error feedback (one that an op they keep float reads, --exclude'd, keeps its
    values); ``feed``: signature -> examples."""
    from ai_edge_litert.tools import flatbuffer_utils

    from pocketbert.formats.tflite.graph import write_in_place

    model = flatbuffer_utils.read_model(str(source))
    grams = _weight_grams(model, source, feed, entries)
    for buffer_index, gram in grams.items():
        buffer = model.buffers[buffer_index]
        weight = np.frombuffer(bytes(buffer.data), np.float32).reshape(-1, gram.shape[0])  # [N, K] ([O, 1, 1, I] as [O, I])
        step = np.abs(weight).max(axis=1)[None, :] / QMAX  # [1, N]
        step[step == 0] = 1.0
        codes = round_with_error_feedback(weight.T, gram, step[0], QMAX, keep_channel_maxima=True)  # [K, N]
        buffer.data = np.ascontiguousarray((codes * step).T.astype(np.float32)).view(np.uint8).ravel()
    write_in_place(model, target, ".fitted")
    return {"error_feedback_weights": len(grams)}


def _weight_grams(model, source: Path, feed: dict[str, list[dict]], entries: list[dict]) -> dict[int, np.ndarray]:
    """weight buffer index -> X^T X [K, K] of the activations every quantized matrix product
    reading that (float32, constant) weight saw, summed over signatures (buckets share
    weights)."""
    from ai_edge_quantizer import recipe_manager
    from ai_edge_quantizer.qtyping import TFLOperationName
    from ai_edge_quantizer.utils.tfl_flatbuffer_utils import get_op_scope

    from pocketbert.formats.tflite.graph import builtin_name
    from pocketbert.formats.tflite.litert import interpreter_module

    manager = recipe_manager.RecipeManager()  # the quantizer's own reading of the entries
    manager.load_quantization_recipe(entries)

    kinds = {i: builtin_name(max(code.builtinCode, code.deprecatedBuiltinCode))
             for i, code in enumerate(model.operatorCodes)}
    interpreter = interpreter_module().Interpreter(str(source), experimental_preserve_all_tensors=True)
    grams: dict[int, np.ndarray] = {}
    pending = GramAccumulator(grams)
    kept_float: set[int] = set()  # weights a float op reads: not moved, even if a quantized op shares them
    for signature in model.signatureDefs:
        name = signature.signatureKey.decode() if isinstance(signature.signatureKey, bytes) else signature.signatureKey
        subgraph = model.subgraphs[signature.subgraphIndex]
        readers = {}  # activation tensor -> the weight buffers its matrix products read
        for op in subgraph.operators:
            kind = kinds[op.opcodeIndex]
            if kind not in MATRIX_PRODUCTS or not _constant_matrix(model, subgraph, op, kind):
                continue
            algorithm, _ = manager.get_quantization_configs(TFLOperationName(kind), get_op_scope(op, subgraph.tensors))
            buffer = subgraph.tensors[op.inputs[1]].buffer
            if algorithm == recipe_manager.AlgorithmName.NO_QUANTIZE:
                kept_float.add(buffer)
            else:
                readers.setdefault(int(op.inputs[0]), []).append(buffer)
        runner = interpreter.get_signature_runner(name)
        for example in feed.get(name, []):
            runner(**{k: v.astype(np.int32) for k, v in example.items()})
            mask = example.get("attention_mask")
            for tensor, buffers in readers.items():
                value = interpreter.get_tensor(tensor, signature.subgraphIndex)
                rows = real_token_rows(value, mask)  # [tokens, K] (NHWC: one row per position)
                for buffer in buffers:
                    pending.add(buffer, rows)
    pending.flush()
    return {buffer: gram for buffer, gram in grams.items() if buffer not in kept_float}


def _constant_matrix(model, subgraph, op, kind: str) -> bool:
    """Whether ``op`` multiplies its input rows by a constant float32 matrix: a
    FULLY_CONNECTED's [N, K] weight, or a 1x1, stride-1 CONV_2D's [O, 1, 1, I] (SqueezeBERT's
    pointwise convolutions, ungrouped), both quantized per output channel (axis 0)."""
    from ai_edge_litert import schema_py_generated as schema

    weight = subgraph.tensors[op.inputs[1]]
    data = model.buffers[weight.buffer].data
    if weight.type != schema.TensorType.FLOAT32 or data is None or not len(data):
        return False
    shape, width = list(weight.shape), list(subgraph.tensors[op.inputs[0]].shape)[-1:]
    if shape[-1:] != width:  # a grouped convolution reads a slice of the row per weight: not one matrix
        return False
    if kind == "FULLY_CONNECTED":
        return len(shape) == 2
    options = op.builtinOptions
    return len(shape) == 4 and shape[1:3] == [1, 1] and (options.strideH, options.strideW) == (1, 1)
