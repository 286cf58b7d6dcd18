"""Embedding tables with one int8 scale per row (formats/onnx/tables.py): a small row keeps its
own resolution next to a large one, where onnxruntime's one range for the table rounds it
to a few codes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pocketbert.formats.onnx.tables import quantize_tables

pytestmark = pytest.mark.integration

VOCAB, WIDTH = 64, 32


def _lookup(path, table: np.ndarray) -> None:
    """y = table[ids] + 1: one Gather of a constant table, as a word embedding is."""
    nodes = [helper.make_node("Gather", ["table", "ids"], ["rows"], name="lookup"),
             helper.make_node("Add", ["rows", "one"], ["y"], name="plus_one")]
    graph = helper.make_graph(
        nodes, "lookup", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "tokens"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def _run(path, ids):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]


def test_each_row_keeps_its_own_resolution(tmp_path):
    from onnxruntime.quantization import quantize_dynamic

    rng = np.random.default_rng(0)
    table = rng.normal(0, 0.02, (VOCAB, WIDTH)).astype(np.float32)  # frequent tokens' small rows
    table[:4] *= 200  # a few large rows set onnxruntime's one range
    _lookup(tmp_path / "float.onnx", table)
    model = onnx.load(str(tmp_path / "float.onnx"))
    assert quantize_tables(model.graph, excluded=set()) == ["table"]
    onnx.save(model, str(tmp_path / "rows.onnx"))
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert "table" not in initializers and initializers["table/codes"].dtype == np.int8
    assert initializers["table/row_scales"].shape == (VOCAB, 1)
    quantize_dynamic(str(tmp_path / "float.onnx"), str(tmp_path / "tensor.onnx"), op_types_to_quantize=["Gather"])

    ids = np.arange(VOCAB, dtype=np.int64)[None, :]
    want = table[ids[0]]
    for name, small_rows_bound in (("rows.onnx", 1 / 254 + 1e-6), ("tensor.onnx", None)):
        error = np.abs(_run(tmp_path / name, ids)[0] - 1 - want)  # [VOCAB, WIDTH]
        relative = error.max(axis=1) / np.abs(want).max(axis=1)  # each row against its own size
        if small_rows_bound:
            assert relative.max() <= small_rows_bound + 1e-5, relative.max()
        else:  # one step of ~2*4*0.02*200/255 over rows of ~0.05: most of a small row lost
            assert relative[4:].max() > 0.3, relative[4:].max()


def test_excluded_lookups_and_non_table_gathers_stay(tmp_path):
    table = np.random.default_rng(1).normal(0, 1, (VOCAB, WIDTH)).astype(np.float32)
    _lookup(tmp_path / "float.onnx", table)
    model = onnx.load(str(tmp_path / "float.onnx"))
    assert quantize_tables(model.graph, excluded={"lookup"}) == []
    assert [n.op_type for n in model.graph.node] == ["Gather", "Add"]


def test_a_table_read_by_two_lookups_is_stored_once(tmp_path):
    table = np.random.default_rng(2).normal(0, 1, (VOCAB, WIDTH)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["a"]), helper.make_node("Gather", ["table", "ids"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    graph = helper.make_graph(nodes, "twice", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "tokens"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert quantize_tables(model.graph, excluded=set()) == ["table"]
    outputs = [name for node in model.graph.node for name in node.output]
    assert len(outputs) == len(set(outputs))  # every tensor written once
    assert sorted(i.name for i in model.graph.initializer) == ["table/codes", "table/row_scales"]
    onnx.save(model, str(tmp_path / "rows.onnx"))
    ids = np.arange(VOCAB, dtype=np.int64)[None, :]
    np.testing.assert_allclose(_run(tmp_path / "rows.onnx", ids)[0], 2 * table, atol=2 * np.abs(table).max() / 254 + 1e-6)
