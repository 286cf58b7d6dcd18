"""Weights read both by ops the quantizer keeps float and by ops it quantizes get one copy each, up front.

A weight can have several readers: a fill-mask model's tied table is both the embedding
lookup's and the MLM decoder's. When the recipe quantizes them differently (a scan or an
--exclude keeps one float), ai-edge-quantizer duplicates the tensor itself, but its
duplicate gets a str name where every other name is bytes, and the DEQUANTIZE it inserts
next then fails on ``str + bytes`` (0.10.0: a traceback for ``quantize --scan --recipe
tflite-weight-only-int8`` on any fill-mask model, whose scan keeps the lookup float while it
quantizes the decoder). When the quantizer fails so, quantize.py hands it the file with that
tensor split: the float reader gets its own float copy, through a path that works. (Only
then: where the quantizer's own path works, as for the static recipes' tied table, it keeps
one int8 copy, 4 MB less for a MobileBERT vocabulary.)
"""

from __future__ import annotations

from pathlib import Path

NAME_TYPE_BUG = 'can only concatenate str (not "bytes") to str'  # the quantizer's message


def separate_shared_constants(source: Path, target: Path, entries: list[dict]) -> int:
    """Write ``source`` to ``target`` with each float weight matrix (rank >= 2: scalars and
    vectors are left to the quantizer) that the quantizer's ``entries`` quantize for some
    readers and keep float for others split in two (tensor and buffer); the count of copies
    added. Nothing is written when there is none. Per subgraph: a bucketed file's copies are
    one per bucket (this is the fallback path, not the usual one)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from pocketbert.formats.tflite.graph import write_in_place
    from pocketbert.formats.tflite.matrix_inputs import kept_float_rule

    model = flatbuffer_utils.read_model(str(source))
    kept_float = kept_float_rule(model, entries)  # a float reader beside a quantized one takes the broken path
    added = 0
    for subgraph in model.subgraphs:
        readers: dict[int, list[tuple[int, int]]] = {}  # constant tensor -> (op, input slot)
        for position, op in enumerate(subgraph.operators):
            for slot, tensor in enumerate(op.inputs):
                constant = subgraph.tensors[tensor] if tensor >= 0 else None
                data = None if constant is None else model.buffers[constant.buffer].data
                if data is not None and len(data) and constant.type == schema.TensorType.FLOAT32 \
                        and len(constant.shape) >= 2:
                    readers.setdefault(tensor, []).append((position, slot))
        for tensor, reads in readers.items():
            groups: dict[bool, list[tuple[int, int]]] = {}  # kept float? -> its reads
            for position, slot in reads:
                groups.setdefault(kept_float(subgraph, subgraph.operators[position]), []).append((position, slot))
            for copy, (_, group) in enumerate(list(groups.items())[1:], start=1):  # the first keeps the original
                original = subgraph.tensors[tensor]
                buffer = schema.BufferT()
                buffer.data = model.buffers[original.buffer].data
                model.buffers.append(buffer)
                duplicate = schema.TensorT()
                duplicate.name = _name(original) + f"/copy{copy}".encode()
                duplicate.shape, duplicate.type, duplicate.buffer = original.shape, original.type, len(model.buffers) - 1
                duplicate.shapeSignature = original.shapeSignature
                subgraph.tensors.append(duplicate)
                for position, slot in group:
                    subgraph.operators[position].inputs[slot] = len(subgraph.tensors) - 1
                added += 1
    if added:
        write_in_place(model, target, ".separated")
    return added


def _name(tensor) -> bytes:
    return tensor.name if isinstance(tensor.name, bytes) else tensor.name.encode()
