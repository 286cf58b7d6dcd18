"""The interface types of a calibrated .tflite: float outputs by default, int8 on request.

ai-edge-quantizer's static recipes leave a graph output quantized (the classifier's
FULLY_CONNECTED writes int8 logits straight to the output), so an app that reads floats
would read raw int8 codes. ``float_outputs`` appends a DEQUANTIZE after every quantized
output, renaming nothing the signature exposes; where the quantizer rounded a float op's
output to 8 bits only because it is an output, it takes the float tensor before the
rounding instead. The int8-I/O recipe skips this and the app applies the output's scale
and zero point itself (saving one small op and a float buffer).
The inputs are int32 token ids in every recipe: there is no float input to quantize.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# DEQUANTIZE's op version by input type, as LiteRT's op version table assigns them
_DEQUANTIZE_VERSION = {"INT8": 2, "INT16": 4}


def float_outputs(path: Path) -> list[str]:
    """Rewrite ``path`` in place so that every int8/int16 signature output is float32;
    returns the names of the outputs it changed."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from pocketbert.formats.tflite.graph import write_in_place

    model = flatbuffer_utils.read_model(str(path))
    quantized_types = {schema.TensorType.INT8: "INT8", schema.TensorType.INT16: "INT16"}
    quantize = [i for i, code in enumerate(model.operatorCodes)
                if flatbuffer_utils.get_builtin_code_from_operator_code(code) == schema.BuiltinOperator.QUANTIZE]
    changed = []
    for signature in model.signatureDefs:
        subgraph = model.subgraphs[signature.subgraphIndex]
        for output in signature.outputs:
            quantized = subgraph.tensors[output.tensorIndex]
            if quantized.type not in quantized_types:
                continue
            changed.append(output.name.decode() if isinstance(output.name, bytes) else output.name)
            rounding = next((op for op in subgraph.operators if op.opcodeIndex in quantize
                             and list(op.outputs) == [output.tensorIndex]), None)
            read = any(output.tensorIndex in op.inputs for op in subgraph.operators)
            if rounding is not None and not read and subgraph.tensors[rounding.inputs[0]].type == schema.TensorType.FLOAT32:
                # a float output the quantizer rounded to 8 bits only to be read as float: not rounded
                subgraph.operators.remove(rounding)
                subgraph.outputs = [rounding.inputs[0] if i == output.tensorIndex else i for i in subgraph.outputs]
                output.tensorIndex = rounding.inputs[0]
                continue
            real = schema.TensorT()
            real.name, real.type, real.buffer = quantized.name, schema.TensorType.FLOAT32, 0  # buffer 0: no data
            real.shape, real.shapeSignature = np.array(quantized.shape), quantized.shapeSignature
            quantized.name = quantized.name + b"_quantized" if isinstance(quantized.name, bytes) else f"{quantized.name}_quantized"
            subgraph.tensors.append(real)
            new_index = len(subgraph.tensors) - 1
            op = schema.OperatorT()
            op.opcodeIndex = opcode_index(model, schema.BuiltinOperator.DEQUANTIZE,
                                           _DEQUANTIZE_VERSION[quantized_types[quantized.type]])
            op.inputs, op.outputs = [output.tensorIndex], [new_index]
            subgraph.operators.append(op)
            subgraph.outputs = [new_index if i == output.tensorIndex else i for i in subgraph.outputs]
            output.tensorIndex = new_index
    if changed:
        write_in_place(model, path, ".io")
    return changed


def opcode_index(model, builtin: int, version: int) -> int:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools.flatbuffer_utils import get_builtin_code_from_operator_code

    for index, code in enumerate(model.operatorCodes):
        if get_builtin_code_from_operator_code(code) == builtin:
            code.version = max(code.version, version)
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
