"""PyTorch -> ExecuTorch (.pte) with the XNNPACK delegate: PyTorch's own on-device runtime,
the successor of PyTorch Mobile.

    torch.export  ->  fold weight-only subgraphs  ->  to_edge_transform_and_lower(XNNPACK)  ->  .pte

Two steps beyond the plain recipe, both found by counting what XNNPACK left behind
(full-size MobileBERT fill-mask: 104 ops on the portable kernels in 51 subgraphs before,
6 ops in 2 subgraphs after; 130 -> 52 ms at seq 128 on 1 thread of this host):

- ``constant_prop_pass`` before lowering. MobileBERT's MLM head multiplies by
  ``cat([decoder.weight.t(), dense.weight])``; computed at run time, that [512, 30522]
  matrix is not a parameter, so XNNPACK refused the matmul and its 2 GFLOP ran on the
  portable (reference) kernels. Folded at export time it is a weight and the matmul is
  delegated (same values: the cat is only precomputed).
- ExecuTorch's own ``RemoveNoopExpandCopyPass`` (``get_transform_passes()``). Every 4-D
  ``torch.matmul`` (attention scores and context) decomposes to expand -> view -> bmm; with
  static shapes the expand copies nothing, but XNNPACK has no expand, so each one ended
  a delegate subgraph: 4 portable ops and 2 extra subgraphs per layer (MobileBERT: 96
  ops). The pass removes the no-op copies; the model code keeps torch.matmul, whose 4-D
  MatMul is what onnxruntime's attention fusion and LiteRT's BATCH_MATMUL want.

What stays on the portable kernels is in the manifest (``details.xnnpack.not_delegated``):
the embedding lookups, the mask's unsqueeze/cast, the pooler's first-token select and
``native_layer_norm`` (XNNPACK has no layer norm; MobileBERT's NoNorm avoids it in the
encoder). Decomposing LayerNorm into XNNPACK ops was measured and was not faster.

Shapes are static by default (as for TFLite): a dynamic export (``static=False``) works
and validates, but XNNPACK cannot take the symbolic reshapes (MobileBERT: 240 portable
view_copy, 146 subgraphs), export takes 2.5x longer and memory is planned for the largest
input (batch ``MAX_DYNAMIC_BATCH`` x ``max_position_embeddings``: 1.1 GB resident for
MobileBERT), for no gain at seq 128.

executorch is an optional extra: nothing here imports it at module level, and asking for
it when it is missing raises ``PocketbertError`` with the install command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import tempfile
from collections import Counter
from pathlib import Path

import torch
from torch.export import Dim

from pocketbert.errors import PocketbertError, first_line
from pocketbert.quiet import quiet_libraries
from pocketbert.contracts.buckets import bucket_signature
from pocketbert.contracts.spec import MIN_SEQUENCE, ExportSpec, TupleOutputs, example_args
from pocketbert.models.modeling import PreTrainedModel

MODEL_FILE = "model.pte"
INSTALL_HINT = "pip install 'pocketbert[executorch]'"
NOT_INSTALLED = f"executorch is not installed: {INSTALL_HINT}"
MAX_DYNAMIC_BATCH = 8  # dynamic exports: memory is planned for the largest input


@contextlib.contextmanager
def _no_empty_folders_left_in_tmp():
    """Importing executorch makes torch's inductor create ``$TMPDIR/torchinductor_<user>``
    and leave it empty: removed when this import made it and nothing was put in it."""
    before = set(os.listdir(tempfile.gettempdir()))
    try:
        yield
    finally:
        for name in set(os.listdir(tempfile.gettempdir())) - before:
            if name.startswith("torchinductor_"):
                with contextlib.suppress(OSError):  # not empty, or not ours to remove
                    os.rmdir(os.path.join(tempfile.gettempdir(), name))


def require(module: str = "executorch"):
    """Import an executorch (or torchao) module, or say how to install the extra."""
    with quiet_libraries(), _no_empty_folders_left_in_tmp():
        try:
            importlib.import_module("executorch")  # the package itself first: a stub module fails here
        except ImportError:
            raise PocketbertError(NOT_INSTALLED) from None
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise PocketbertError(f"{module} cannot be imported ({first_line(exc)}): {INSTALL_HINT}") from None


def version() -> str:
    from importlib import metadata

    return metadata.version("executorch")


# ---- torch.export ------------------------------------------------------------------------------
def dynamic_shapes(spec: ExportSpec):
    """Every input gets the same dims; None for a static spec."""
    if spec.static:
        return None
    dims = {
        "batch": Dim("batch", min=1, max=MAX_DYNAMIC_BATCH),
        "choices": Dim("choices", min=1, max=16),
        "sequence": Dim("sequence", min=MIN_SEQUENCE, max=spec.max_sequence),
    }
    per_input = {axis: dims[name] for axis, name in enumerate(spec.input_axes)}
    return {"inputs": tuple(per_input for _ in spec.input_names)}


def export_program(module: torch.nn.Module, spec: ExportSpec, vocab_size: int) -> torch.export.ExportedProgram:
    """torch.export of a module taking the spec's inputs positionally (``TupleOutputs`` of
    a model, or a quantized graph module of one)."""
    args = example_args(spec, vocab_size)
    try:
        with quiet_libraries(), torch.no_grad():
            return torch.export.export(module, args, dynamic_shapes=dynamic_shapes(spec), strict=False)
    except Exception as exc:
        raise PocketbertError(f"torch.export failed: {type(exc).__name__}: {first_line(exc)}") from None


# ---- lowering ----------------------------------------------------------------------------------
def lower(program, path: Path) -> dict:
    """Fold weight-only subgraphs, lower to XNNPACK, write the .pte; returns the manifest
    details (what XNNPACK took and what stayed on the portable kernels). ``program`` is one
    ExportedProgram (the method "forward") or {method name: ExportedProgram}: a bucketed
    file's methods, whose weights the XNNPACK blobs share (one copy in the file)."""
    exir = require("executorch.exir")
    partitioner = require("executorch.backends.xnnpack.partition.xnnpack_partitioner")
    configs = require("executorch.backends.xnnpack.utils.configs")
    constant_prop = require("executorch.exir.passes.constant_prop_pass")
    try:
        with quiet_libraries():
            skip = _keep_unfolded(constant_prop)
            if isinstance(program, dict):
                program = {name: constant_prop.constant_prop_pass(p, custom_skip_targets=skip) for name, p in program.items()}
                last = list(program)[-1]  # the longest bucket's method stands for the others in the details
            else:
                program, last = constant_prop.constant_prop_pass(program, custom_skip_targets=skip), "forward"
            edge = exir.to_edge_transform_and_lower(
                program,
                transform_passes=configs.get_transform_passes(),  # RemoveNoopExpandCopyPass
                partitioner=[partitioner.XnnpackPartitioner()],
                compile_config=configs.get_xnnpack_edge_compile_config(),
            )
            details = delegation(edge.exported_program(last))
            executorch_program = edge.to_executorch(configs.get_xnnpack_executorch_backend_config())
    except PocketbertError:
        raise
    except Exception as exc:
        raise PocketbertError(f"ExecuTorch lowering failed: {type(exc).__name__}: {first_line(exc)}") from None
    path.write_bytes(executorch_program.buffer)
    return {
        "converter": f"executorch {version()}",
        "backend": "XnnpackBackend",
        "passes": ["constant_prop_pass", "RemoveNoopExpandCopyPass"],
        **details,
    }


def _keep_unfolded(constant_prop) -> set:
    """What constant propagation must not fold. Its defaults name edge-dialect ops, but it
    runs here on the ATen dialect (before to_edge), so the ATen forms are added: ``full``
    (folding it only grows the file) and every quantize/dequantize op. Folded,
    ``dequantize(int8 weight)`` became a float32 weight: the file did not shrink and
    XNNPACK was left with float Linears behind stray activation quantize ops."""
    keep = set(constant_prop.get_default_skip_targets_no_quant()) | {torch.ops.aten.full.default}
    for namespace in ("quantized_decomposed", "torchao"):
        ops = getattr(torch.ops, namespace)
        for name in dir(ops):
            packet = getattr(ops, name)
            if isinstance(packet, torch._ops.OpOverloadPacket):
                keep.update(getattr(packet, overload) for overload in packet.overloads())
    return keep


def _op_name(node: torch.fx.Node) -> str:
    name = getattr(node.target, "__name__", str(node.target))
    return name.removeprefix("aten.").removesuffix(".default")


def _ops(graph: torch.fx.Graph) -> list[torch.fx.Node]:
    """Compute nodes: call_function minus tuple unpacking (getitem) and delegate calls."""
    return [
        n for n in graph.nodes
        if n.op == "call_function" and _op_name(n) not in ("getitem", "executorch_call_delegate")
    ]


def delegation(edge_program) -> dict:
    """XNNPACK coverage of a lowered edge program: the ops inside each delegate subgraph
    (its original module) against those left in the top-level graph (portable kernels)."""
    graph_module = edge_program.graph_module
    calls = [n for n in graph_module.graph.nodes if n.op == "call_function" and _op_name(n) == "executorch_call_delegate"]
    taken: Counter[str] = Counter()
    for call in calls:
        lowered = getattr(graph_module, call.args[0].target)
        taken.update(_op_name(n) for n in _ops(lowered.original_module.graph))
    left = Counter(_op_name(n) for n in _ops(graph_module.graph))
    return {
        "xnnpack": {
            "subgraphs": len(calls),
            "nodes": sum(taken.values()),
            "of": sum(taken.values()) + sum(left.values()),
            "not_delegated": dict(sorted(left.items(), key=lambda kv: (-kv[1], kv[0]))),
        },
        "op_histogram": dict(sorted((taken + left).items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def export_executorch(model: PreTrainedModel, spec: ExportSpec, directory: Path) -> dict:
    """Write model.pte (fp32, XNNPACK) for ``model``; returns the manifest details."""
    require("executorch.exir")
    if not spec.static and spec.batch > MAX_DYNAMIC_BATCH:  # the manifest would record a batch the file refuses
        raise PocketbertError(f"--batch {spec.batch}: a dynamic .pte takes batches 1-{MAX_DYNAMIC_BATCH} "
                              "(its memory is planned for the largest); use --static for a larger fixed batch")
    module = TupleOutputs(model).eval()
    if spec.buckets:  # a method per length (seq_16 ...), weights once
        program = {bucket_signature(n): export_program(module, dataclasses.replace(spec, sequence=n), model.config.vocab_size)
                   for n in spec.buckets}
    else:
        program = export_program(module, spec, model.config.vocab_size)
    details = lower(program, directory / MODEL_FILE)
    details["dynamic_shapes"] = None if spec.static else {
        "batch": [1, MAX_DYNAMIC_BATCH], "sequence": [MIN_SEQUENCE, spec.max_sequence]}
    return details


# ---- runtime -----------------------------------------------------------------------------------
def runtime():
    """executorch's Python runtime (the C++ runtime and XNNPACK delegate an app links) and
    its pybindings module (for the threadpool)."""
    module = require("executorch.runtime")
    bindings = require("executorch.extension.pybindings.portable_lib")
    return module.Runtime.get(), bindings
