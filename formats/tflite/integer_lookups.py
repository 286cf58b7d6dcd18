"""Integer lookups for the 16-bit full-integer LiteRT file: the embedding tables and the mask.

ai-edge-quantizer quantizes EMBEDDING_LOOKUP only in its weight-only modes (float output), and
it leaves a CAST from the int32 mask to float as it is, so the NPU recipe's file kept every
table float (46.9 of its 58.7 MB for all-MiniLM-L6-v2) and three float ops, each followed by
a QUANTIZE to int16: not integer from the ids on, and 2.5x the dynamic file. After the
quantizer has written the file, each such pair becomes integer:

- a table of at most ``SMALL_TABLE_ROWS`` rows (token types): a GATHER from an int16 copy at
  the scale the QUANTIZE had;
- a larger table (words): per-row int8, the dynamic recipe's granularity (all-MiniLM-L6-v2's
  tables in int8 and the rest float, short texts' pooled cosine min / mean: per tensor
  0.9973 / 0.9988, per row 0.9997 / 0.9999):
  a GATHER of int8 codes, a CAST to int16 (scale 1: the code itself), and a MUL by the row's
  scale, GATHERed from an int16 column;
- the attention mask's CAST(int32 -> float) -> QUANTIZE: a GATHER from the two int16 codes
  of 0 and 1 (a CAST to int16 at scale 1 would be exact too, but LiteRT's int16 SUB that
  turns the mask into the padding bias refuses an input scale that far above its output's).

The ranges the quantizer calibrates for the lookups are widened first (``lookup_ranges``): a
lookup's output range is its whole table's, so a token absent from the calibration text (or
token type 1 under single-sentence calibration) does not saturate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketbert.formats.tflite.float_io import opcode_index
from pocketbert.formats.tflite.graph import builtin_name, write_in_place

SMALL_TABLE_ROWS = 1024  # token types (2), positions (512): int16; vocabularies: per-row int8
INT16_MAX = 32767
INT8_MAX = 127
# op versions as LiteRT's version table gives them for these input types
_GATHER_VERSION = {"INT8": 2, "INT16": 4}
_CAST_INT8_VERSION = 3
_MUL_INT16_VERSION = 4


def lookup_ranges(source: Path, ranges: dict) -> dict:
    """Widen ``ranges`` (calibrated, by tensor name): each float lookup's output to its
    table's min/max."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(source))
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = _op_name(model, op)
            output = subgraph.tensors[op.outputs[0]]
            key = _text(output.name)
            if key not in ranges:
                continue
            table = _float_table(model, subgraph, op) if name == "EMBEDDING_LOOKUP" else None
            if table is not None:
                ranges[key] = {"min": np.asarray(min(table.min(), 0.0), np.float32),
                               "max": np.asarray(max(table.max(), 0.0), np.float32)}
    return ranges


def integer_lookups(path: Path) -> list[str]:
    """Rewrite ``path`` in place: every float lookup, and the mask's int->float CAST, whose
    only reader is a QUANTIZE to int16 computes in integers instead. Returns what it
    rewrote, one line each."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    done: list[str] = []
    shared: dict[tuple, int] = {}  # (float buffer, what was made of it) -> buffer: buckets share tables
    for subgraph in model.subgraphs:
        replacements: dict[int, list] = {}  # op position -> the ops that take its place
        dropped: set[int] = set()
        readers = _readers(subgraph)
        for position, op in enumerate(subgraph.operators):
            name = _op_name(model, op)
            quantize = _single_int16_quantize(model, subgraph, readers, op)
            if quantize is None:
                continue
            target = quantize.outputs[0]
            values = _float_table(model, subgraph, op) if name == "EMBEDDING_LOOKUP" else None
            if values is not None:
                ids, table_index = op.inputs
                rows = values.shape[0]
                if rows <= SMALL_TABLE_ROWS:
                    replacements[position] = [_int16_gather(model, subgraph, table_index, values, ids, target, shared)]
                else:
                    replacements[position] = _row_scaled_gather(model, subgraph, table_index, values, ids, target, shared)
                kind = "int16" if rows <= SMALL_TABLE_ROWS else "int8 per row"
                done.append(f"{_text(subgraph.tensors[table_index].name)}: {kind}")
            elif name == "CAST" and _casts_the_mask(model, subgraph, op):
                replacements[position] = [_mask_gather(model, subgraph, op.inputs[0], target, shared)]
                done.append(f"{_text(subgraph.tensors[op.inputs[0]].name)}: int16 (0/1 mask)")
            else:
                continue
            dropped.add(subgraph.operators.index(quantize))
        if replacements:
            ops = []
            for position, op in enumerate(subgraph.operators):
                if position in dropped:
                    continue
                ops.extend(replacements.get(position, [op]))
            subgraph.operators = ops
    if done:
        _drop_unread_buffers(model)
        write_in_place(model, path, ".lookups")
    return done


# ---- the rewrites -------------------------------------------------------------------------
def _int16_gather(model, subgraph, table_index: int, values: np.ndarray, ids: int, target: int, shared: dict):
    """The table (its float ``values``) as int16 at the target's scale; GATHER writes the target directly."""
    from ai_edge_litert import schema_py_generated as schema

    table = subgraph.tensors[table_index]
    scale = float(subgraph.tensors[target].quantization.scale[0])
    codes = np.clip(np.round(values / scale), -INT16_MAX, INT16_MAX).astype(np.int16)
    table_index = _constant(model, subgraph, codes, schema.TensorType.INT16, scale, _text(table.name) + "_int16",
                            shared, (table.buffer, "int16", scale))
    return _gather(model, subgraph, table_index, ids, target, "INT16")


def _row_scaled_gather(model, subgraph, table_index: int, values: np.ndarray, ids: int, target: int,
                       shared: dict) -> list:
    """int8 codes per row of ``values`` [V, H], GATHERed, CAST to int16, times the row's
    GATHERed int16 scale."""
    from ai_edge_litert import schema_py_generated as schema

    table = subgraph.tensors[table_index]
    row_scale = np.maximum(np.abs(values).max(axis=1, keepdims=True), 1e-12) / INT8_MAX  # [V, 1]
    codes = np.clip(np.round(values / row_scale), -INT8_MAX, INT8_MAX).astype(np.int8)
    column_scale = float(row_scale.max()) / INT16_MAX
    column = np.clip(np.round(row_scale / column_scale), 1, INT16_MAX).astype(np.int16)
    base = _text(table.name)
    codes_index = _constant(model, subgraph, codes, schema.TensorType.INT8, 1.0, base + "_codes",
                            shared, (table.buffer, "codes"))
    scales_index = _constant(model, subgraph, column, schema.TensorType.INT16, column_scale, base + "_row_scales",
                             shared, (table.buffer, "row scales"))
    lookups, width = _shape(subgraph, ids)[0], values.shape[1]
    picked8 = _activation(subgraph, [lookups, width], schema.TensorType.INT8, 1.0, base + "_picked_codes")
    picked16 = _activation(subgraph, [lookups, width], schema.TensorType.INT16, 1.0, base + "_picked_codes16")
    picked_scale = _activation(subgraph, [lookups, 1], schema.TensorType.INT16, column_scale, base + "_picked_scales")
    multiply = schema.OperatorT()
    multiply.opcodeIndex = opcode_index(model, schema.BuiltinOperator.MUL, _MUL_INT16_VERSION)
    multiply.inputs, multiply.outputs = [picked16, picked_scale], [target]
    multiply.builtinOptionsType = schema.BuiltinOptions.MulOptions
    multiply.builtinOptions = schema.MulOptionsT()
    return [_gather(model, subgraph, codes_index, ids, picked8, "INT8"),
            _widen(model, picked8, picked16),
            _gather(model, subgraph, scales_index, ids, picked_scale, "INT16"),
            multiply]


def _mask_gather(model, subgraph, mask: int, target: int, shared: dict):
    """The 0/1 mask picks its own int16 code from [code of 0, code of 1] at the target's scale."""
    from ai_edge_litert import schema_py_generated as schema

    scale = float(subgraph.tensors[target].quantization.scale[0])
    codes = np.array([0, min(round(1.0 / scale), INT16_MAX)], dtype=np.int16)
    table = _constant(model, subgraph, codes, schema.TensorType.INT16, scale, "attention_mask_codes",
                      shared, ("mask", scale))
    return _gather(model, subgraph, table, mask, target, "INT16")


def _gather(model, subgraph, table_index: int, ids: int, target: int, kind: str):
    from ai_edge_litert import schema_py_generated as schema

    op = schema.OperatorT()
    op.opcodeIndex = opcode_index(model, schema.BuiltinOperator.GATHER, _GATHER_VERSION[kind])
    op.inputs, op.outputs = [table_index, ids], [target]
    op.builtinOptionsType = schema.BuiltinOptions.GatherOptions
    op.builtinOptions = schema.GatherOptionsT()
    op.builtinOptions.axis, op.builtinOptions.batchDims = 0, 0
    return op


def _widen(model, source: int, target: int):
    """CAST int8 -> int16: the same integers, so the codes can meet int16 operands."""
    from ai_edge_litert import schema_py_generated as schema

    op = schema.OperatorT()
    op.opcodeIndex = opcode_index(model, schema.BuiltinOperator.CAST, _CAST_INT8_VERSION)
    op.inputs, op.outputs = [source], [target]
    op.builtinOptionsType = schema.BuiltinOptions.CastOptions
    op.builtinOptions = schema.CastOptionsT()
    op.builtinOptions.inDataType, op.builtinOptions.outDataType = schema.TensorType.INT8, schema.TensorType.INT16
    return op


# ---- tensors ------------------------------------------------------------------------------
def _quantization(scale: float):
    from ai_edge_litert import schema_py_generated as schema

    params = schema.QuantizationParametersT()
    params.scale, params.zeroPoint, params.quantizedDimension = [scale], [0], 0
    return params


def _constant(model, subgraph, values: np.ndarray, kind: int, scale: float, name: str, shared: dict, key: tuple) -> int:
    """A constant tensor of ``values``; its buffer is made once per ``key`` and shared."""
    from ai_edge_litert import schema_py_generated as schema

    if key not in shared:
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype=np.uint8)
        model.buffers.append(buffer)
        shared[key] = len(model.buffers) - 1
    tensor = schema.TensorT()
    tensor.name, tensor.type, tensor.shape = name, kind, list(values.shape)
    tensor.buffer, tensor.quantization = shared[key], _quantization(scale)
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def _activation(subgraph, shape: list[int], kind: int, scale: float, name: str) -> int:
    from ai_edge_litert import schema_py_generated as schema

    tensor = schema.TensorT()
    tensor.name, tensor.type, tensor.shape, tensor.buffer = name, kind, list(shape), 0
    tensor.quantization = _quantization(scale)
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def _drop_unread_buffers(model) -> None:
    """Empty every buffer no op reads any more (the float tables): they would still be written."""
    read = {subgraph.tensors[t].buffer for subgraph in model.subgraphs for op in subgraph.operators
            for t in op.inputs if t >= 0}
    read |= {subgraph.tensors[t].buffer for subgraph in model.subgraphs for t in list(subgraph.inputs) + list(subgraph.outputs)}
    read |= {entry.buffer for entry in model.metadata or []}
    for index, buffer in enumerate(model.buffers):
        if index not in read and buffer.data is not None and len(buffer.data):
            buffer.data = None


def _buffer_array(model, tensor, dtype) -> np.ndarray:
    data = model.buffers[tensor.buffer].data
    return np.frombuffer(bytes(np.asarray(data, dtype=np.uint8)), dtype=dtype).reshape(tensor.shape)


def _float_table(model, subgraph, op) -> np.ndarray | None:
    from ai_edge_litert import schema_py_generated as schema

    table = subgraph.tensors[op.inputs[1]]
    data = model.buffers[table.buffer].data
    if table.type != schema.TensorType.FLOAT32 or data is None or len(data) == 0:
        return None
    return _buffer_array(model, table, np.float32)


def _casts_the_mask(model, subgraph, op) -> bool:
    """An int32 -> float CAST of the attention_mask input (through reshapes only)."""
    from ai_edge_litert import schema_py_generated as schema

    if (subgraph.tensors[op.inputs[0]].type != schema.TensorType.INT32
            or subgraph.tensors[op.outputs[0]].type != schema.TensorType.FLOAT32):
        return False
    producers = {output: producer for producer in subgraph.operators for output in producer.outputs}
    tensor = op.inputs[0]
    while tensor in producers and _op_name(model, producers[tensor]) == "RESHAPE":
        tensor = producers[tensor].inputs[0]
    return tensor in subgraph.inputs and "attention_mask" in _text(subgraph.tensors[tensor].name)


def _single_int16_quantize(model, subgraph, readers: dict, op):
    """The QUANTIZE to int16 (zero point 0) that is the only reader of ``op``'s output, or None."""
    from ai_edge_litert import schema_py_generated as schema

    found = readers.get(op.outputs[0], [])
    if len(found) != 1 or _op_name(model, found[0]) != "QUANTIZE":
        return None
    target = subgraph.tensors[found[0].outputs[0]]
    params = target.quantization
    if target.type != schema.TensorType.INT16 or params is None or len(params.scale) != 1 or params.zeroPoint[0] != 0:
        return None
    return found[0]


def _readers(subgraph) -> dict[int, list]:
    found: dict[int, list] = {}
    for op in subgraph.operators:
        for tensor in op.inputs:
            found.setdefault(tensor, []).append(op)
    for tensor in subgraph.outputs:
        found.setdefault(tensor, []).append(None)
    return found


def _op_name(model, op) -> str | None:
    from ai_edge_litert.tools.flatbuffer_utils import get_builtin_code_from_operator_code

    return None if op is None else builtin_name(get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]))


def _shape(subgraph, index: int) -> list[int]:
    return list(subgraph.tensors[index].shape)


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)
