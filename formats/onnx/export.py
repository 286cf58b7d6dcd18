"""PyTorch -> ONNX (for ONNX Runtime, and its .ort format for ONNX Runtime Mobile).

torch.onnx's dynamo exporter (torch.export underneath) writes opset 18 natively, with
dynamic ``batch``/``sequence`` axes by default. Its version converter cannot take
MobileBERT's Pad down to opset 17, so ``--opset 17`` goes through torch's TorchScript-based
exporter instead (same names and axes; the manifest says which exporter ran).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch
from torch.export import Dim

from pocketbert.errors import PocketbertError, first_line
from pocketbert.formats.onnx.tune import restore_residual_adds, tune_for_onnxruntime
from pocketbert.quiet import quiet_libraries
from pocketbert.contracts.spec import MIN_SEQUENCE, ExportSpec, TupleOutputs, example_args
from pocketbert.models.modeling import PreTrainedModel

DYNAMO_OPSET = 18
MIN_OPSET = 17
MODEL_FILE = "model.onnx"
OPTIMIZED_FILE = "model.optimized.onnx"


def _dynamic_shapes(spec: ExportSpec):
    dims = {
        "batch": Dim("batch", min=1, max=1024),
        "choices": Dim("choices", min=1, max=64),
        "sequence": Dim("sequence", min=MIN_SEQUENCE, max=spec.max_sequence),
    }
    per_input = {axis: dims[name] for axis, name in enumerate(spec.input_axes)}
    return {"inputs": tuple(per_input for _ in spec.input_names)}


def export_onnx(model: PreTrainedModel, spec: ExportSpec, directory: Path, opset: int = DYNAMO_OPSET) -> dict:
    """Write model.onnx and check it with onnx.checker (full check). Returns manifest details."""
    import onnx

    if opset < MIN_OPSET:
        raise PocketbertError(f"--opset must be >= {MIN_OPSET}, got {opset}")
    path = directory / MODEL_FILE
    args = example_args(spec, model.config.vocab_size)
    wrapper = TupleOutputs(model).eval()
    names = dict(input_names=list(spec.input_names), output_names=list(spec.output_names))
    exporter = "dynamo" if opset >= DYNAMO_OPSET else "torchscript"
    try:
        with quiet_libraries(), torch.no_grad():
            if exporter == "dynamo":
                torch.onnx.export(
                    wrapper, args, str(path), dynamo=True, opset_version=opset, external_data=False,
                    dynamic_shapes=None if spec.static else _dynamic_shapes(spec), **names,
                )
            else:
                axes = {name: dict(enumerate(spec.input_axes)) for name in spec.input_names}
                axes.update(
                    {name: {i: d for i, d in enumerate(spec.output_axes[name]) if isinstance(d, str)} for name in spec.output_names}
                )
                torch.onnx.export(
                    wrapper, args, str(path), dynamo=False, opset_version=opset,
                    dynamic_axes=None if spec.static else axes, **names,
                )
    except Exception as exc:
        raise PocketbertError(f"ONNX export failed: {type(exc).__name__}: {first_line(exc)}") from None
    graph = onnx.load(str(path))
    tuned = tune_for_onnxruntime(graph)
    if any(tuned.values()):
        onnx.save(graph, str(path))
    try:
        onnx.checker.check_model(graph, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise PocketbertError(f"{path}: onnx.checker rejects the exported graph ({first_line(exc)})") from None
    return {
        "opset": next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")),
        "exporter": f"torch.onnx ({exporter})",
        "nodes": len(graph.graph.node),
        "op_histogram": _op_histogram(graph),
        "tuned_for_onnxruntime": tuned,
    }


def _op_histogram(graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def split_unsqueezes(graph) -> int:
    """Rewrite each Unsqueeze over several constant axes as a chain of single-axis ones.

    The dynamo exporter folds ``mask[:, None, None, :]`` into one Unsqueeze(axes=[1, 2]);
    onnxruntime's attention fusion looks for the mask path Unsqueeze -> Unsqueeze -> Cast ->
    Sub -> Mul. Same function, one node more. Returns how many nodes were split."""
    import onnx
    from onnx import helper, numpy_helper

    constants = {init.name: numpy_helper.to_array(init) for init in graph.graph.initializer}
    for node in graph.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    rewritten, split = [], 0
    for node in graph.graph.node:
        axes = constants.get(node.input[1]) if node.op_type == "Unsqueeze" and len(node.input) == 2 else None
        if axes is None or axes.size < 2 or (axes < 0).any():
            rewritten.append(node)
            continue
        current = node.input[0]
        for i, axis in enumerate(sorted(int(a) for a in axes.ravel())):
            axis_name = f"{node.name or node.output[0]}_axis{i}"
            # a Constant node, not an initializer: the optimizer may move initializers to
            # external data, where shape inference cannot read them
            rewritten.append(helper.make_node(
                "Constant", [], [axis_name], value=numpy_helper.from_array(np.array([axis], dtype=np.int64))
            ))
            output = node.output[0] if i == axes.size - 1 else f"{node.output[0]}_part{i}"
            rewritten.append(helper.make_node("Unsqueeze", [current, axis_name], [output], name=f"{axis_name}_node"))
            current = output
        split += 1
    del graph.graph.node[:]
    graph.graph.node.extend(rewritten)
    used = {name for node in graph.graph.node for name in node.input}
    unused = [init for init in graph.graph.initializer if init.name not in used]
    for init in unused:  # the old axes tensors
        graph.graph.initializer.remove(init)
    onnx.checker.check_model(graph)
    return split


def optimize(model: PreTrainedModel, directory: Path) -> dict:
    """onnxruntime's transformer optimizer (attention / LayerNorm / GELU fusion) -> a
    second file. Fusions need the patterns of BERT's graph; MobileBERT's NoNorm and
    bottlenecks leave most of it unfused, which the fused-op counts show."""
    import onnx
    from onnxruntime.transformers import optimizer

    config = model.config
    graph = onnx.load(str(directory / MODEL_FILE))
    restore_residual_adds(graph.graph)
    split_unsqueezes(graph)
    # through a file: given a ModelProto, the optimizer externalises tensors that ORT's
    # shape inference then cannot read (seen on full-size MobileBERT)
    staged = directory / "model.staged.onnx"
    onnx.save(graph, str(staged))
    with quiet_libraries(), contextlib.redirect_stderr(io.StringIO()):
        optimized = optimizer.optimize_model(
            str(staged),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=getattr(config, "true_hidden_size", config.hidden_size),
            opt_level=1,
        )
        optimized.save_model_to_file(str(directory / OPTIMIZED_FILE))
        fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    staged.unlink()
    onnx.checker.check_model(str(directory / OPTIMIZED_FILE), full_check=True)
    return {"fused_operators": fused, "note": "contrib ops (com.microsoft) need the full ONNX Runtime, not every Mobile build"}


def convert_to_ort(directory: Path) -> Path:
    """ONNX Runtime Mobile's .ort format, with onnxruntime's own converter."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    out = directory / "ort"
    with quiet_libraries(), contextlib.redirect_stderr(io.StringIO()):
        convert_onnx_models_to_ort(directory / MODEL_FILE, output_dir=out, optimization_styles=[OptimizationStyle.Fixed])
    produced = sorted(out.glob("*.ort"))
    if not produced:
        raise PocketbertError("onnxruntime's converter wrote no .ort file")
    target = directory / "model.ort"
    produced[0].replace(target)
    for extra in out.glob("*.config"):  # the operator list a reduced ORT Mobile build needs
        extra.replace(directory / "model.required_operators.config")
    for leftover in out.iterdir():
        leftover.unlink()
    out.rmdir()
    return target
