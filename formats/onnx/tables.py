"""Embedding tables as int8 with one scale per row, for the per-token recipes.

onnxruntime.quantization's Gather gives the whole table one uint8 range: the word table of
a trained BERT spans rows of very different magnitude (frequent tokens small, rare ones
large), so one step over [min, max] of 11.7 M values leaves the small rows a few codes (real
MiniLM, static per-token recipe, held-out text: tie-aware retention 0.997 -> 0.987 against a
float table). Here every row gets its own symmetric scale and the lookup reads the scale
beside the codes:

    ids [B, S] -> Gather(codes int8 [V, H]) -> Cast float -> x [B, S, H]
               -> Gather(scales [V, 1])     -> s [B, S, 1] -> x * s

which is a quarter of the float table's bytes plus V floats, and two cheap ops per table.
"""

from __future__ import annotations

import numpy as np

from pocketbert.formats.onnx.graph import lookup_tables


def quantize_tables(graph, excluded: set[str]) -> list[str]:
    """Rewrite in place every Gather of a constant float 2-D table (not in ``excluded``) into
    the per-row int8 lookup above; returns the tables rewritten."""
    from onnx import TensorProto, helper, numpy_helper

    floats = {i.name: i for i in graph.initializer if i.data_type == TensorProto.FLOAT}
    tables = {name: floats[name] for name in lookup_tables(graph) if name in floats}
    nodes, rewritten, added = [], [], []
    for node in graph.node:
        if node.op_type != "Gather" or node.input[0] not in tables or node.name in excluded:
            nodes.append(node)
            continue
        name = node.input[0]
        if name not in rewritten:  # a table read by two lookups is stored once
            table = numpy_helper.to_array(tables[name])  # [V, H]
            scale = np.abs(table).max(axis=1, keepdims=True) / 127.0  # [V, 1]
            scale[scale == 0] = 1.0
            codes = np.clip(np.round(table / scale), -127, 127).astype(np.int8)
            added += [numpy_helper.from_array(codes, f"{name}/codes"),
                      numpy_helper.from_array(scale.astype(np.float32), f"{name}/row_scales")]
            rewritten.append(name)
        ids, out = node.input[1], node.output[0]  # the output's name is unique: the new names derive from it
        nodes += [helper.make_node("Gather", [f"{name}/codes", ids], [f"{out}/codes"], name=f"{out}/codes"),
                  helper.make_node("Cast", [f"{out}/codes"], [f"{out}/float_codes"], name=f"{out}/cast",
                                   to=TensorProto.FLOAT),
                  helper.make_node("Gather", [f"{name}/row_scales", ids], [f"{out}/scales"], name=f"{out}/scales"),
                  helper.make_node("Mul", [f"{out}/float_codes", f"{out}/scales"], [out], name=node.name or out)]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend([*kept, *added])
    return rewritten

