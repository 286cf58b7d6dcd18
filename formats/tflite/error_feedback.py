"""Error-feedback weight codes for the LiteRT recipes (formats/gptq.py).

ai-edge-quantizer rounds each weight of the float file to its nearest int8 code, on a
per-channel grid it derives from the channel's largest weight. So the float file it is given
carries weights already moved onto that grid by error feedback, the largest weight of every
channel kept at +-127: the quantizer derives the same grid and returns exactly the chosen
codes. The kernels and the file layout are the quantizer's own; only which code each weight
gets changes. The Gram matrices come from the float file itself, run on the calibration text
with every tensor kept (the FULLY_CONNECTED inputs over real tokens).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pocketbert.formats.gptq import GramAccumulator, round_with_error_feedback

QMAX = 127  # ai-edge-quantizer's symmetric int8 weights: step = largest |weight| / 127


def fit_weights(source: Path, target: Path, feed: dict[str, list[dict]], entries: list[dict]) -> dict:
    """Write ``source`` to ``target`` with every FULLY_CONNECTED weight that calibration
    reached and the quantizer's ``entries`` quantize moved onto its int8 grid by error
    feedback (an op they keep float, --exclude'd, keeps its weights); ``feed``: signature ->
    examples."""
    from ai_edge_litert.tools import flatbuffer_utils

    from pocketbert.formats.tflite.graph import write_in_place

    grams = _weight_grams(source, feed, entries)
    model = flatbuffer_utils.read_model(str(source))
    for buffer_index, gram in grams.items():
        buffer = model.buffers[buffer_index]
        weight = np.frombuffer(bytes(buffer.data), np.float32).reshape(-1, gram.shape[0])  # [N, K]
        step = np.abs(weight).max(axis=1)[None, :] / QMAX  # [1, N]
        step[step == 0] = 1.0
        codes = round_with_error_feedback(weight.T, gram, step[0], QMAX, keep_channel_maxima=True)  # [K, N]
        buffer.data = np.ascontiguousarray((codes * step).T.astype(np.float32)).view(np.uint8).ravel()
    shutil.copyfile(source, target)
    write_in_place(model, target, ".fitted")
    return {"error_feedback_weights": len(grams)}


def _weight_grams(source: Path, feed: dict[str, list[dict]], entries: list[dict]) -> dict[int, np.ndarray]:
    """weight buffer index -> X^T X [K, K] of the activations every quantized FULLY_CONNECTED
    reading that (float32, constant) weight saw, summed over signatures (buckets share
    weights)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils
    from ai_edge_quantizer import recipe_manager
    from ai_edge_quantizer.qtyping import TFLOperationName
    from ai_edge_quantizer.utils.tfl_flatbuffer_utils import get_op_scope

    from pocketbert.formats.tflite.litert import interpreter_module

    manager = recipe_manager.RecipeManager()  # the quantizer's own reading of the entries
    manager.load_quantization_recipe(entries)

    model = flatbuffer_utils.read_model(str(source))
    fully_connected = [i for i, code in enumerate(model.operatorCodes)
                       if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.FULLY_CONNECTED]
    interpreter = interpreter_module().Interpreter(str(source), experimental_preserve_all_tensors=True)
    grams: dict[int, np.ndarray] = {}
    pending = GramAccumulator(grams)
    for signature in model.signatureDefs:
        name = signature.signatureKey.decode() if isinstance(signature.signatureKey, bytes) else signature.signatureKey
        subgraph = model.subgraphs[signature.subgraphIndex]
        readers = {}  # activation tensor -> the weight buffers its FULLY_CONNECTEDs read
        for op in subgraph.operators:
            if op.opcodeIndex not in fully_connected:
                continue
            algorithm, _ = manager.get_quantization_configs(TFLOperationName.FULLY_CONNECTED,
                                                             get_op_scope(op, subgraph.tensors))
            if algorithm == recipe_manager.AlgorithmName.NO_QUANTIZE:
                continue
            weight = subgraph.tensors[op.inputs[1]]
            data = model.buffers[weight.buffer].data
            if weight.type == schema.TensorType.FLOAT32 and data is not None and len(weight.shape) == 2 and len(data):
                readers.setdefault(int(op.inputs[0]), []).append(weight.buffer)
        runner = interpreter.get_signature_runner(name)
        for example in feed.get(name, []):
            runner(**{k: v.astype(np.int32) for k, v in example.items()})
            mask = example.get("attention_mask")
            for tensor, buffers in readers.items():
                value = interpreter.get_tensor(tensor, signature.subgraphIndex)
                rows = value.reshape(-1, value.shape[-1])  # [tokens, K]
                if mask is not None and rows.shape[0] == mask.size:
                    rows = rows[mask.reshape(-1) > 0]  # real tokens only
                for buffer in buffers:
                    pending.add(buffer, rows)
    pending.flush()
    return grams
