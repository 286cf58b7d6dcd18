"""Which of an .onnx file's nodes ONNX Runtime Mobile's accelerator EPs would take.

The answer is onnxruntime's own mobile usability checker (``onnxruntime.tools.
mobile_helpers.usability_checker``, what ``check_onnx_model_mobile_usability`` prints),
called for its data: on the graph onnxruntime's basic optimizations leave, per EP, the
supported nodes, the partitions they form, and the nodes refused for their op or for a
dynamic input shape. It reads op tables shipped with onnxruntime; it does not run the EP,
so its per-op caveats are passed on as they are. A dynamic file is also checked as if its
shapes were fixed, which says what ``--static`` would buy.

NNAPI is deprecated from Android 15 and CoreML exists only on Apple devices; onnxruntime's
XNNPACK EP has no checker and is not in the PyPI build, which is said instead of guessed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from pocketbert.atomic import work_directory
from pocketbert.errors import first_line
from pocketbert.contracts.accelerator import STATIC, UNAVAILABLE, AcceleratorCheck, FileInspection

if TYPE_CHECKING:
    from pocketbert.contracts.artifact import Manifest

NNAPI_NOTE = ("NNAPI is deprecated from Android 15 (Google's migration guide points to LiteRT's GPU and NPU "
              "accelerators); onnxruntime's NNAPI EP partitions were often slower than its CPU kernels")

# accelerator name -> (the checker's function, its op table, a note)
EPS = {
    "ONNX Runtime NNAPI": ("check_nnapi_partitions", None, NNAPI_NOTE),
    "ONNX Runtime CoreML (MLProgram)": ("check_coreml_partitions", "coreml_supported_mlprogram_ops.md",
                                        "Apple devices only"),
}

DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16"}


def _rows(values) -> list[dict]:
    rows = []
    for value in values:
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
        rows.append({"name": value.name, "shape": shape, "dtype": DTYPES.get(tensor.elem_type, str(tensor.elem_type))})
    return rows


def _check(accelerator: str, info, graph, dynamic_values: int, note: str, what_if=None) -> AcceleratorCheck:
    """One EP's PartitioningInfo as a check: nodes taken, partitions, what is left and why."""
    taken = {id(node) for group in info.supported_groups for node in group}
    left = Counter(node.op_type for node in graph.node if id(node) not in taken)  # op types left on the CPU
    reasons = [f"{op}: not in the {accelerator.split(' ', 2)[-1]} EP's op table" for op in sorted(info.unsupported_ops)]
    if info.nodes_unsupported_due_to_dynamic_input:
        reasons.insert(0, f"{info.nodes_unsupported_due_to_dynamic_input} nodes have dynamic input shapes "
                          f"({dynamic_values} dynamic values): the EP takes fixed shapes only")
    if info.num_unsupported_nodes_due_to_rank:
        reasons.append(f"{info.num_unsupported_nodes_due_to_rank} nodes of {sorted(info.ops_with_unsupported_rank)} "
                       "have an input rank the EP does not take")
    notes = [note]
    if what_if is not None:
        plural = "s" * (what_if.num_partitions != 1)
        notes.append(f"this graph with its shapes fixed: {what_if.num_supported_nodes}/{what_if.num_nodes} nodes in "
                     f"{what_if.num_partitions} partition{plural} (export --static fixes them)")
    notes += [f"caveat, {line.strip()}" for line in info.supported_ops_checker.get_caveats()]
    return AcceleratorCheck(
        accelerator=accelerator, checker=f"onnxruntime usability_checker (suitability {info.suitability().name})",
        how=STATIC, taken=info.num_supported_nodes, of=info.num_nodes, partitions=info.num_partitions,
        fallback=dict(left), reasons=reasons, notes=notes,
    )


def inspect_onnx(path: Path) -> FileInspection:
    import onnx
    from onnxruntime.tools import onnx_model_utils
    from onnxruntime.tools.mobile_helpers import usability_checker

    graph = onnx.load(str(path), load_external_data=False).graph
    initializer_names = {i.name for i in graph.initializer}
    inputs = _rows([i for i in graph.input if i.name not in initializer_names])
    outputs = _rows(graph.output)
    checks = []
    with work_directory("inspect") as work:
        optimized = work / path.name
        try:
            # what the checker itself does first: the graph after onnxruntime's basic fusions
            onnx_model_utils.optimize_model(path, optimized, use_external_initializers=True)
            model = onnx_model_utils.ModelProtoWithShapeInfo(optimized.resolve()).model_with_shape_info
        except Exception as exc:
            reason = f"onnxruntime's checker cannot read the file ({first_line(exc)})"
            return FileInspection(str(path), "onnx", path.stat().st_size, inputs, outputs,
                                  [AcceleratorCheck(name, "onnxruntime usability_checker", UNAVAILABLE, reasons=[reason])
                                   for name in EPS])
        dynamic_inputs, dynamic_values = usability_checker.check_shapes(model.graph)
        for accelerator, (function, table, note) in EPS.items():
            check = getattr(usability_checker, function)
            run = (lambda fixed: check(model, fixed)) if table is None else (lambda fixed: check(model, fixed, table))
            info = run(True)
            checks.append(_check(accelerator, info, model.graph, dynamic_values, note,
                                 run(False) if dynamic_inputs else None))
    checks.append(AcceleratorCheck(
        "ONNX Runtime XNNPACK", "onnxruntime.get_available_providers()", UNAVAILABLE,
        reasons=[_xnnpack_reason()],
    ))
    return FileInspection(str(path), "onnx", path.stat().st_size, inputs, outputs, checks,
                          tensor_dtypes=dict(Counter(DTYPES.get(i.data_type, str(i.data_type)) for i in graph.initializer)))


def _xnnpack_reason() -> str:
    import onnxruntime as ort

    if "XnnpackExecutionProvider" in ort.get_available_providers():
        return "this onnxruntime has the XNNPACK EP, but ships no checker for it"
    return (f"this onnxruntime {ort.__version__} build has no XNNPACK EP (providers: "
            f"{', '.join(ort.get_available_providers())}) and onnxruntime ships no checker for it")


ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


def inspect_ort(path: Path, manifest: Manifest | None) -> FileInspection:
    """An .ort is ONNX Runtime Mobile's flatbuffer of an .onnx: the checker reads ONNX only,
    so the facts come from a session and the checks from the .onnx beside it."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows = [[{"name": v.name, "shape": [d if isinstance(d, int) else str(d) for d in v.shape],
              "dtype": ORT_DTYPES.get(v.type, v.type)}
             for v in values] for values in (session.get_inputs(), session.get_outputs())]
    source = path.with_suffix(".onnx")
    checks = inspect_onnx(source).checks if source.exists() else []
    notes = [f"checks of {source.name}, the graph this .ort was converted from"] if checks else \
        ["no .onnx beside it: onnxruntime's checker reads ONNX only"]
    return FileInspection(str(path), "ort", path.stat().st_size, rows[0], rows[1], checks, notes=notes)
