"""The activations a LiteRT file's quantized matrix products read, and what calibration shows of them.

Both weight passes on the float file (smoothing.py, error_feedback.py) need the same two
things: which FULLY_CONNECTED / 1x1 CONV_2D ops the quantizer's entries will quantize (asked
of ai-edge-quantizer's own RecipeManager, so --exclude'd ops are left as they are), and the
rows those ops' inputs take on real text (the float file run with every tensor kept, once for
both passes: input_statistics).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketbert.formats.gptq import GramAccumulator, real_token_rows

MATRIX_PRODUCTS = ("FULLY_CONNECTED", "CONV_2D")  # CONV_2D: 1x1, stride 1, ungrouped only


@dataclass(frozen=True)
class Reader:
    op: int  # operator index in its subgraph
    buffer: int  # the constant float32 weight it multiplies by ([N, K], or [O, 1, 1, I])


@dataclass(frozen=True)
class MatrixInputs:
    # (subgraph index, activation tensor index) -> the quantized matrix products reading it
    readers: dict[tuple[int, int], list[Reader]]
    # weight buffers whose values must stay as they are: read by a matrix product the entries
    # keep float, or by any other op (a tied MLM decoder's table is also the embedding lookup's)
    fixed: frozenset[int]


def kept_float_rule(model, entries: list[dict]):
    """The rule (subgraph, op) -> whether ai-edge-quantizer keeps the op float under its
    recipe ``entries``, asked of its own RecipeManager (an op kind it does not know: float)."""
    from ai_edge_quantizer import recipe_manager
    from ai_edge_quantizer.qtyping import TFLOperationName
    from ai_edge_quantizer.utils.tfl_flatbuffer_utils import get_op_scope

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(entries)
    kinds = _op_kinds(model)

    def kept_float(subgraph, op) -> bool:
        try:
            kind = TFLOperationName(kinds[op.opcodeIndex])
        except ValueError:
            return True
        algorithm, _ = manager.get_quantization_configs(kind, get_op_scope(op, subgraph.tensors))
        return algorithm == recipe_manager.AlgorithmName.NO_QUANTIZE

    return kept_float


def _op_kinds(model) -> dict[int, str]:
    from pocketbert.formats.tflite.graph import builtin_name

    return {i: builtin_name(max(code.builtinCode, code.deprecatedBuiltinCode)) for i, code in enumerate(model.operatorCodes)}


def matrix_inputs(model, entries: list[dict]) -> MatrixInputs:
    """The quantized matrix products of every signature's subgraph of ``model`` (a ModelT),
    grouped by the activation they read; ``entries``: the quantizer's recipe."""
    kept_float, kinds = kept_float_rule(model, entries), _op_kinds(model)
    readers: dict[tuple[int, int], list[Reader]] = {}
    fixed: set[int] = set()
    quantized_reads: set[tuple[int, int]] = set()  # (subgraph, op) whose input 1 is a weight a pass may change
    for index in sorted({signature.subgraphIndex for signature in model.signatureDefs}):
        subgraph = model.subgraphs[index]
        for position, op in enumerate(subgraph.operators):
            kind = kinds[op.opcodeIndex]
            if kind not in MATRIX_PRODUCTS or not _constant_matrix(model, subgraph, op, kind):
                continue
            buffer = subgraph.tensors[op.inputs[1]].buffer
            if kept_float(subgraph, op):
                fixed.add(buffer)
            else:
                readers.setdefault((index, int(op.inputs[0])), []).append(Reader(position, buffer))
                quantized_reads.add((index, position))
    fixed |= _read_elsewhere(model, quantized_reads)
    return MatrixInputs(readers, frozenset(fixed))


def _read_elsewhere(model, quantized_reads: set[tuple[int, int]]) -> set[int]:
    """The constant buffers some op reads other than as a quantized matrix product's weight."""
    found = set()
    for index, subgraph in enumerate(model.subgraphs):
        for position, op in enumerate(subgraph.operators):
            for slot, tensor in enumerate(op.inputs):
                if tensor >= 0 and not (slot == 1 and (index, position) in quantized_reads):
                    found.add(subgraph.tensors[tensor].buffer)
    return found


@dataclass(frozen=True)
class InputStatistics:
    """One calibration run's view of the quantized matrix products' inputs."""
    peaks: dict[tuple[int, int], np.ndarray]  # activation (subgraph, tensor) -> largest |x| per channel [K]
    grams: dict[int, np.ndarray]  # weight buffer -> X^T X [K, K] over every row it multiplied (empty if not asked)


def input_statistics(model, source: Path, feed: dict[str, list[dict]], inputs: MatrixInputs,
                     grams: bool) -> InputStatistics:
    """Per-channel peaks of every activation in ``inputs`` and, with ``grams``, each weight's
    Gram matrix, summed over signatures (buckets share weights), from one run of ``source``."""
    peaks: dict[tuple[int, int], np.ndarray] = {}
    found: dict[int, np.ndarray] = {}
    pending = GramAccumulator(found)
    for activation, rows in calibration_rows(model, source, feed, set(inputs.readers)):
        if not rows.size:
            continue
        peak = np.abs(rows).max(axis=0)  # [K]
        peaks[activation] = np.maximum(peaks[activation], peak) if activation in peaks else peak
        for reader in inputs.readers[activation] if grams else []:
            pending.add(reader.buffer, rows)
    pending.flush()
    return InputStatistics(peaks, found)


def calibration_rows(model, source: Path, feed: dict[str, list[dict]],
                     activations: set[tuple[int, int]]) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """((subgraph, tensor), rows [tokens, K] over the real tokens of one example) for each of
    ``activations`` and each example of ``feed`` (signature -> examples) of its signature."""
    from pocketbert.formats.tflite.litert import interpreter_module

    interpreter = interpreter_module().Interpreter(str(source), experimental_preserve_all_tensors=True)
    for signature in model.signatureDefs:
        key = signature.signatureKey
        name = key.decode() if isinstance(key, bytes) else key
        wanted = [tensor for index, tensor in activations if index == signature.subgraphIndex]
        runner = interpreter.get_signature_runner(name)
        for example in feed.get(name, []) if wanted else []:
            runner(**{k: v.astype(np.int32) for k, v in example.items()})
            mask = example.get("attention_mask")
            for tensor in wanted:
                value = interpreter.get_tensor(tensor, signature.subgraphIndex)
                yield (signature.subgraphIndex, tensor), real_token_rows(value, mask)  # NHWC: one row per position


def weight_matrix(model, buffer: int, width: int) -> np.ndarray:
    """The float32 weight in ``buffer`` as [N, K] (a 1x1 convolution's [O, 1, 1, I] as [O, I])."""
    return np.frombuffer(bytes(model.buffers[buffer].data), np.float32).reshape(-1, width)


def store_weight(model, buffer: int, matrix: np.ndarray) -> None:
    model.buffers[buffer].data = np.ascontiguousarray(matrix.astype(np.float32)).view(np.uint8).ravel()


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
