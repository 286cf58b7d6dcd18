"""The operators and tensor names of every subgraph of a .tflite, read from the flatbuffer.

The Interpreter's op listing covers subgraph 0 only, and a bucketed file has one subgraph
per signature whose tensors carry their own names (litert-torch suffixes them ``;1``,
``;2`` ...): anything that picks tensors by name (the quantizer's float exclusions) or
counts ops (inspect) has to walk each subgraph.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Operator:
    name: str  # builtin name (FULLY_CONNECTED ...), or the custom code of a CUSTOM op
    inputs: tuple[int, ...]  # tensor indices in its subgraph; -1 = an omitted optional input
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Subgraph:
    operators: tuple[Operator, ...]
    tensor_names: tuple[str, ...]  # by tensor index
    tensor_types: tuple[str, ...]  # FLOAT32, INT8 ... by tensor index

    def producers(self) -> dict[int, Operator]:
        return {output: op for op in self.operators for output in op.outputs}

    def consumers(self) -> dict[int, list[Operator]]:
        readers: dict[int, list[Operator]] = {}
        for op in self.operators:
            for tensor in op.inputs:
                readers.setdefault(tensor, []).append(op)
        return readers


LAYOUT = ("RESHAPE", "TRANSPOSE")  # move values without changing them


def before_layout(tensor: int, producers: dict) -> tuple:
    """The op that made ``tensor`` once RESHAPE/TRANSPOSE are looked through (None: an input
    or a constant), and the layout ops passed."""
    feeder, passed = producers.get(tensor), []
    while feeder is not None and feeder.name in LAYOUT:
        passed.append(feeder)
        feeder = producers.get(feeder.inputs[0])
    return feeder, passed


def masked_score_adds(graph: Subgraph) -> list[Operator]:
    """The ADD that feeds each SOFTMAX its scores plus the padding bias (an attention's mask add)."""
    producers = graph.producers()
    feeders = [producers.get(op.inputs[0]) for op in graph.operators if op.name == "SOFTMAX"]
    return [op for op in feeders if op is not None and op.name == "ADD"]


@functools.cache
def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def builtin_name(code: int) -> str:
    """FULLY_CONNECTED ... for a builtin operator code ("?" for one this schema lacks)."""
    return _builtin_names().get(code, "?")


def subgraphs(path: str | Path) -> list[Subgraph]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    result = []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        operators = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = codes[op.OpcodeIndex()]
            name = builtin_name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
            if name == "CUSTOM" and code.CustomCode():
                name = code.CustomCode().decode()
            operators.append(Operator(name, tuple(op.InputsAsNumpy()) if op.InputsLength() else (),
                                      tuple(op.OutputsAsNumpy()) if op.OutputsLength() else ()))
        tensors = [graph.Tensors(t) for t in range(graph.TensorsLength())]
        result.append(Subgraph(tuple(operators), tuple((t.Name() or b"").decode() for t in tensors),
                               tuple(type_names.get(t.Type(), "?") for t in tensors)))
    return result


def write_in_place(model, path: Path, suffix: str) -> None:
    """Write a ``ModelT`` (flatbuffer_utils' object form) over ``path`` through a staged file.
    ``read_model`` hands buffers out as memoryviews, which the generated ``Pack`` copies byte
    by byte (50 s for MiniLM's 23 MB); as numpy arrays it copies each once."""
    import numpy as np
    from ai_edge_litert.tools import flatbuffer_utils

    for buffer in model.buffers:
        if buffer.data is not None and type(buffer.data) is not np.ndarray:
            buffer.data = np.frombuffer(buffer.data, dtype=np.uint8)
    staged = path.with_name(path.name + suffix)
    try:  # a full disk or a signal leaves no staged file beside the artifact
        flatbuffer_utils.write_model(model, str(staged))
        staged.replace(path)
    finally:
        staged.unlink(missing_ok=True)
