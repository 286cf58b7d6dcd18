"""Every model traces with torch.jit.trace and torch.export: one graph for any batch and
sequence length, no data-dependent branches, no tensor constants baked into the graph
(transformers' MobileBERT traced a torch.tensor(1000) that broke Optimum's ONNX check)."""

from __future__ import annotations

import pytest
import torch
from helpers import inputs_for
from torch.export import Dim

from pocketbert.models import registry

pytestmark = pytest.mark.integration  # torch.export and jit.trace: the front end of every exporter, seconds per model


def build(arch: str, task: str):
    cls = registry.get_architecture(arch).model_class(task)
    return cls(registry.get_architecture(arch).fake_config()).init_weights(0).eval()


def as_args(model, inputs):
    return tuple(inputs[name] for name in model.input_names)


def assert_same(expected, got, names):
    for name, value in zip(names, got):
        torch.testing.assert_close(value, expected[name], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch,task", registry.all_pairs())
def test_torch_export_with_dynamic_batch_and_sequence(arch, task):
    model = build(arch, task)
    example = inputs_for(model, batch=2, seq=16)
    dims = {"batch": Dim("batch", min=1, max=64), "seq": Dim("seq", min=3, max=128)}
    spec = {"batch": 0, "seq": 2 if task == "multiple-choice" else 1}
    shapes = {name: {axis: dims[dim] for dim, axis in spec.items()} for name in model.input_names}
    program = torch.export.export(model, as_args(model, example), dynamic_shapes=shapes)
    assert not program.graph_signature.lifted_tensor_constants, "tensor constants in the graph"
    other = inputs_for(model, batch=3, seq=37, seed=9)
    with torch.no_grad():
        got = program.module()(*as_args(model, other))
        expected = model(*as_args(model, other))
    assert list(got) == list(model.output_names)
    assert_same(expected, got.values(), model.output_names)


@pytest.mark.parametrize("arch,task", registry.all_pairs())
def test_jit_trace_generalises_to_other_shapes(arch, task):
    model = build(arch, task)
    example = inputs_for(model, batch=2, seq=16)
    with torch.no_grad():
        traced = torch.jit.trace(model, as_args(model, example), strict=False)
        other = inputs_for(model, batch=3, seq=21, seed=4)
        got = traced(*as_args(model, other))
        expected = model(*as_args(model, other))
    assert_same(expected, [got[name] for name in model.output_names], model.output_names)
    # Python numbers (1.0, the mask bias) trace as 0-dim constants, which every exporter
    # handles; a baked array (a shape-specific mask or position table) would not generalise.
    arrays = [
        n for n in traced.inlined_graph.nodes()
        if n.kind() == "prim::Constant" and n.output().type().kind() == "TensorType" and n.output().type().dim()
    ]
    assert not arrays, f"tensor constants in the traced graph: {arrays[:3]}"
