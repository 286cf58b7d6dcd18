"""What a .pte hands to its delegates, read from the program itself.

A .pte's execution plan lists one ``DelegateCall`` per delegate blob (XnnpackBackend,
VulkanBackend, QnnBackend ...) and one ``KernelCall`` per op left on the portable CPU
kernels. Reading them back from the file (executorch's own deserializer) answers for any
.pte, ours or not; how many graph nodes went into each blob is only known at lowering,
so the manifest's count is added when there is one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from pocketbert.errors import PocketbertError, first_line
from pocketbert.contracts.accelerator import STATIC, AcceleratorCheck, FileInspection

if TYPE_CHECKING:
    from pocketbert.contracts.artifact import Manifest

SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                7: "float64", 11: "bool", 15: "bfloat16"}  # executorch's ScalarType numbering
BACKEND_NAMES = {"XnnpackBackend": "XNNPACK", "QnnBackend": "Qualcomm QNN", "CoreMLBackend": "Core ML"}


def read_plan(path: Path):
    from pocketbert.formats.executorch.export import require

    serialize = require("executorch.exir._serialize._program")
    try:
        program = serialize.deserialize_pte_binary(Path(path).read_bytes())
    except Exception as exc:
        raise PocketbertError(f"{path}: not an ExecuTorch program ({first_line(exc)})") from None
    program = getattr(program, "program", program)  # newer releases wrap it with the named data
    plans = {plan.name: plan for plan in program.execution_plan}
    if "forward" not in plans:
        raise PocketbertError(f"{path}: the program has no forward method (methods: {', '.join(plans)})")
    return plans["forward"]


def _tensor_row(plan, index: int, name: str) -> dict:
    value = plan.values[index].val
    sizes = [int(n) for n in getattr(value, "sizes", [])]
    return {"name": name, "shape": sizes, "dtype": SCALAR_TYPES.get(int(getattr(value, "scalar_type", -1)), "?")}


def inspect_pte(path: Path, manifest: Manifest | None) -> FileInspection:
    plan = read_plan(path)
    backends: Counter[str] = Counter()
    portable: Counter[str] = Counter()
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            kind = type(args).__name__
            if kind == "DelegateCall":
                backends[plan.delegates[args.delegate_index].id] += 1
            elif kind == "KernelCall":
                portable[plan.operators[args.op_index].name.split("::")[-1]] += 1
    names_in = [row.name for row in manifest.inputs] if manifest is not None else []
    names_out = [row.name for row in manifest.outputs] if manifest is not None else []
    inputs = [_tensor_row(plan, i, names_in[k] if k < len(names_in) else f"input_{k}") for k, i in enumerate(plan.inputs)]
    outputs = [_tensor_row(plan, i, names_out[k] if k < len(names_out) else f"output_{k}")
               for k, i in enumerate(plan.outputs)]
    counted = (manifest.details.get("xnnpack") if manifest is not None else None) or {}
    checks = []
    for backend in sorted(set(backends) | {"XnnpackBackend"}):
        taken = counted.get("nodes") if backend == "XnnpackBackend" else None
        checks.append(AcceleratorCheck(
            accelerator=f"ExecuTorch {BACKEND_NAMES.get(backend, backend.removesuffix('Backend'))}",
            checker="the .pte's execution plan (executorch deserializer)",
            how=STATIC,
            taken=taken if backends[backend] else 0,
            of=None if taken is None else taken + sum(portable.values()),
            partitions=backends[backend],
            fallback=dict(portable),
            reasons=[f"{op}: no {backend} kernel was lowered for it; runs on the portable CPU kernels"
                     for op in sorted(portable)] if backends[backend] else [f"nothing was lowered to {backend}"],
        ))
    return FileInspection(path=str(path), kind="executorch", bytes=Path(path).stat().st_size, inputs=inputs,
                          outputs=outputs, checks=checks)
