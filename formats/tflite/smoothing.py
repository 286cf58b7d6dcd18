"""SmoothQuant for LiteRT's dynamic recipe (formats/smoothquant.py): XNNPACK quantizes each
row of a FULLY_CONNECTED's input at run time, so a token row whose outlier channels set its
step loses its other channels, as in the ONNX per-token recipe.

The float file given to the quantizer gets, before each activation its quantized matrix
products read, one MUL by 1 / s [K] (the readers take its output; the residual ADD and
any other reader keep the activation itself), and those weights' input channels multiplied
by s: the float function is unchanged up to rounding. Weights shared by several subgraphs
(bucketed files) take one s, from every subgraph's calibration rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from pocketbert.formats.smoothquant import migration_divisors
from pocketbert.formats.tflite.matrix_inputs import MatrixInputs, store_weight, weight_matrix

SUFFIX = "/smoothed"  # the MUL's output: the activation's name + this
FLOAT_MULS = {"regex": rf".*{SUFFIX};", "operation": "MUL", "algorithm_key": "no_quantize"}  # 1 / s stays float32


@dataclass(frozen=True)
class Smoothing:
    activations: int  # activations divided (one MUL each)
    divisors: dict[int, np.ndarray]  # weight buffer -> the s [K] its input channels were multiplied by


def smooth_matrix_inputs(model, inputs: MatrixInputs, peaks: dict[tuple[int, int], np.ndarray],
                         alpha: float) -> Smoothing:
    """Divide, in ``model`` (a ModelT, changed in place), the inputs of the quantized matrix
    products ``inputs`` by their SmoothQuant divisors (strength ``alpha``) from calibration's
    per-channel ``peaks``, and multiply those products' weights by them."""
    groups = _weight_groups(inputs)
    magnitude: dict[tuple[int, ...], np.ndarray] = {}  # weight group -> largest |x| per channel [K]
    for weights, activations in groups.items():
        seen = [peaks[a] for a in activations if a in peaks]
        if seen:
            magnitude[weights] = np.max(seen, axis=0)
    divided, divisors = [], {}
    for weights, peak in magnitude.items():
        matrices = {buffer: weight_matrix(model, buffer, peak.size) for buffer in weights}  # [N, K] each
        divisor = migration_divisors(peak, [m.T for m in matrices.values()], alpha)  # [K]
        if divisor is None:
            continue
        for buffer, matrix in matrices.items():
            store_weight(model, buffer, matrix * divisor[None, :])
            divisors[buffer] = divisor
        for subgraph, tensor in groups[weights]:
            divided.append((subgraph, tensor, (1.0 / divisor).astype(np.float32)))
    _insert_divisions(model, inputs, divided)
    return Smoothing(len(divided), divisors)


def _weight_groups(inputs: MatrixInputs) -> dict[tuple[int, ...], list[tuple[int, int]]]:
    """The weight buffers read together -> the activations (subgraph, tensor) reading them.
    A weight read from two groups (or by any other op) cannot take one divisor: its group is
    left out."""
    groups: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for activation, readers in inputs.readers.items():
        groups.setdefault(tuple(sorted({r.buffer for r in readers})), []).append(activation)
    uses = Counter(buffer for weights in groups for buffer in weights)
    return {weights: activations for weights, activations in groups.items()
            if all(uses[b] == 1 and b not in inputs.fixed for b in weights)}


def _insert_divisions(model, inputs: MatrixInputs, divided: list[tuple[int, int, np.ndarray]]) -> None:
    """A MUL by each inverse divisor [K] before the first of the activation's quantized
    readers (ops are stored in execution order), which then read its output."""
    from ai_edge_litert import schema_py_generated as schema

    code = _operator_code(model, schema.BuiltinOperator.MUL)
    before: dict[int, dict[int, list]] = {}  # subgraph -> op position -> the MULs that go in front of it
    for subgraph_index, tensor, inverse in divided:
        subgraph, readers = model.subgraphs[subgraph_index], inputs.readers[subgraph_index, tensor]
        activation = subgraph.tensors[tensor]
        factor = _tensor(schema, f"{_name(activation)}{SUFFIX}/inverse_divisor", list(inverse.shape),
                         _buffer(model, schema, inverse))
        result = _tensor(schema, f"{_name(activation)}{SUFFIX}", list(activation.shape), _buffer(model, schema, None))
        result.shapeSignature = activation.shapeSignature
        subgraph.tensors += [factor, result]
        mul = schema.OperatorT()
        mul.opcodeIndex, mul.inputs = code, [tensor, len(subgraph.tensors) - 2]
        mul.outputs = [len(subgraph.tensors) - 1]
        mul.builtinOptionsType, mul.builtinOptions = schema.BuiltinOptions.MulOptions, schema.MulOptionsT()
        for reader in readers:
            subgraph.operators[reader.op].inputs[0] = len(subgraph.tensors) - 1
        before.setdefault(subgraph_index, {}).setdefault(min(r.op for r in readers), []).append(mul)
    for subgraph_index, inserts in before.items():
        subgraph = model.subgraphs[subgraph_index]
        subgraph.operators = [new for position, op in enumerate(subgraph.operators)
                              for new in [*inserts.get(position, []), op]]


def _operator_code(model, builtin: int) -> int:
    from ai_edge_litert import schema_py_generated as schema

    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _buffer(model, schema, values: np.ndarray | None) -> int:
    """A new buffer holding ``values`` (None: an activation's, empty)."""
    buffer = schema.BufferT()
    buffer.data = None if values is None else np.ascontiguousarray(values).view(np.uint8).ravel()
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def _tensor(schema, name: str, shape: list[int], buffer: int):
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name.encode(), shape, schema.TensorType.FLOAT32, buffer
    return tensor


def _name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
