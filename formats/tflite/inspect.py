"""Where a .tflite runs: LiteRT's CPU (XNNPACK), GPU and the NPU compiler plugins, asked here.

- CPU: the Interpreter's execution plan with XNNPACK applied (``export.inspect_tflite``):
  the nodes the delegate replaced, counted from its partitions.
- GPU: LiteRT 2's CompiledModel on its GPU accelerator, for real, in a child process
  (``gpu_probe``): full delegation (``is_fully_accelerated``) and the output's difference
  to the CPU in fp16 and fp32. The wheel's accelerator is WebGPU (Dawn over Vulkan), so a
  machine with Mesa's lavapipe runs it; without a Vulkan device the reason is reported.
  LiteRT's model analyzer has a GPU mode, but its per-op check is compiled out of the
  ai-edge-litert wheel (it calls every graph compatible), so it is not used.
- NPU: each vendor compiler plugin the wheel ships, through LiteRT's own
  ``apply_plugin_main --cmd=partition``: the ops the plugin selects for its NPU and the
  partitions they form. Plugins whose vendor SDK is missing (not on PyPI) say so in their
  own words.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

from pocketbert.atomic import work_directory
from pocketbert.contracts.accelerator import RAN, STATIC, UNAVAILABLE, AcceleratorCheck, FileInspection

GPU_PROBE_SECONDS = 900  # a 12-layer BERT on lavapipe takes ~30 s; a hung driver is cut off
PARTITION_SECONDS = 300
PARTITIONED = re.compile(r"Partitioned subgraph<(\d+)>, selected (\d+) ops, from a total of (\d+) ops\. "
                         r"resulted in (\d+) partitions")
GPU_NOTE = ("fp16 on the GPU by default: compare the max difference with your task's margin; "
            "measured on a software Vulkan device, so its latency says nothing about a phone")


def _dtype_name(value) -> str:
    import numpy as np

    return np.dtype(value).name


def _rows(details: dict) -> list[dict]:
    return [{"name": name, "shape": [int(n) for n in d["shape"]], "dtype": _dtype_name(d["dtype"])}
            for name, d in details.items()]


def cpu_check(path: Path) -> AcceleratorCheck:
    from pocketbert.formats.tflite.export import inspect_tflite

    details = inspect_tflite(path)
    xnnpack = details["xnnpack"]
    return AcceleratorCheck(
        accelerator="LiteRT CPU (XNNPACK)", checker="LiteRT Interpreter's execution plan with the XNNPACK delegate",
        how=RAN, taken=xnnpack["nodes"], of=xnnpack["of"], partitions=xnnpack["partitions"],
        fallback=dict(xnnpack["not_delegated"]),
        reasons=[f"{op}: XNNPACK did not take it; LiteRT's builtin kernel runs it" for op in sorted(xnnpack["not_delegated"])],
    )


def gpu_check(path: Path, nodes: int) -> AcceleratorCheck:
    check = AcceleratorCheck(accelerator="LiteRT GPU", checker="LiteRT CompiledModel on the GPU accelerator "
                             "(is_fully_accelerated, one run against the CPU)", how=UNAVAILABLE)
    try:
        done = _run([sys.executable, "-m", "pocketbert.formats.tflite.gpu_probe", str(path)], timeout=GPU_PROBE_SECONDS)
    except subprocess.TimeoutExpired:
        check.reasons = [f"the GPU run did not finish in {GPU_PROBE_SECONDS} s"]
        return check
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        check.reasons = [f"the GPU probe failed (exit {done.returncode}): {said[-1] if said else 'no output'}"]
        return check
    result = json.loads(lines[-1])
    if not result["ran"]:
        check.reasons = [result["reason"]]
        return check
    check.how = RAN
    check.measured = {k: v for k, v in result.items() if k not in ("ran", "fully_accelerated")}
    if result["fully_accelerated"]:
        check.taken = check.of = nodes  # CompiledModel answers for the whole graph, not per node
        check.partitions = 1
    else:
        check.reasons = ["CompiledModel placed part of the graph on the CPU (is_fully_accelerated() is false)"]
    check.notes = [GPU_NOTE]
    return check


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """A child process, without JAX's at-fork warning (litert-torch imported it; the child
    execs at once, so the warning's deadlock cannot happen)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return subprocess.run(command, capture_output=True, text=True, **kwargs)


def _vendors() -> list[tuple[str, str, str, Path]]:
    """(vendor package name, SoC manufacturer, SoC model, compiler plugin dir) of every NPU
    compiler plugin in the ai-edge-litert wheel; the SoC is the first the vendor lists."""
    import importlib

    import ai_edge_litert

    root = Path(ai_edge_litert.__file__).parent / "vendors"
    found = []
    for compiler in sorted(root.glob("*/compiler")):
        vendor = compiler.parent.name
        try:
            target = importlib.import_module(f"ai_edge_litert.aot.vendors.{vendor}.target")
        except ImportError:
            continue
        manufacturer = next(iter(target.SocManufacturer)).value
        models = [m.value for m in target.SocModel if m.value != "ALL"]
        if models:
            found.append((vendor, manufacturer, models[0], compiler))
    return found


def _sdk_library_path(vendor: str) -> str:
    """Where a vendor's SDK libraries are when a PyPI package provides them (OpenVINO's)."""
    if vendor != "intel_openvino":
        return ""
    try:
        import openvino
    except ImportError:
        return ""
    return str(Path(openvino.__file__).parent / "libs")


def _ops_by_subgraph(path: Path) -> list[Counter]:
    from pocketbert.formats.tflite.graph import subgraphs

    return [Counter(op.name for op in graph.operators) for graph in subgraphs(path)]


def npu_checks(path: Path) -> list[AcceleratorCheck]:
    from ai_edge_litert.aot.core import common

    try:
        binary = common.get_resource(Path("tools/apply_plugin_main"))
    except FileNotFoundError:
        return [AcceleratorCheck("LiteRT NPU", "apply_plugin_main", UNAVAILABLE,
                                 reasons=["this ai-edge-litert has no apply_plugin_main (NPU AOT) for this platform"])]
    checks = []
    original = sum(_ops_by_subgraph(path)[0].values())
    for vendor, manufacturer, soc, plugin_dir in _vendors():
        check = AcceleratorCheck(f"LiteRT NPU {manufacturer} {soc}",
                                 f"{manufacturer} compiler plugin (apply_plugin_main --cmd=partition)", UNAVAILABLE)
        with work_directory("npu") as work:
            # TMPDIR: the MediaTek plugin leaves a tempdir_dla.* directory behind per call
            env = dict(os.environ, TMPDIR=str(work), LD_LIBRARY_PATH=os.pathsep.join(
                p for p in (_sdk_library_path(vendor), common.construct_ld_library_path()) if p))
            out = work / "partitioned.tflite"
            try:
                done = _run([str(binary), "--cmd=partition", f"--model={path}", f"--o={out}",
                             f"--soc_manufacturer={manufacturer}", f"--soc_model={soc}", "--err=--",
                             f"--libs={plugin_dir}"], env=env, timeout=PARTITION_SECONDS)
                log = (done.stdout + done.stderr).splitlines()
            except subprocess.TimeoutExpired:
                log, done = [f"the partition step did not finish in {PARTITION_SECONDS} s"], None
            stats = [PARTITIONED.search(line) for line in log]
            stats = [m for m in stats if m]
            if done is None or done.returncode or not stats or not out.exists():
                check.reasons = [_plugin_reason(log)]
            else:
                check.how = STATIC
                check.taken = sum(int(m.group(2)) for m in stats)
                check.of = sum(int(m.group(3)) for m in stats) or original
                check.partitions = sum(int(m.group(4)) for m in stats)
                left = _ops_by_subgraph(out)[0]
                check.fallback = {op: n for op, n in left.items() if op != "DISPATCH_OP"}
                check.reasons = [f"{op}: the {manufacturer} plugin did not select it" for op in sorted(check.fallback)]
                check.notes = ["partitioned by the vendor's plugin; compiling for the NPU needs the vendor SDK"]
        checks.append(check)
    return checks


def _plugin_reason(log: list[str]) -> str:
    """The plugin's own first error: a missing SDK library, an unknown SoC ..."""
    text = "\n".join(log)
    match = re.search(r"([\w.+-]+\.so[\w.]*): cannot open shared object file", text)
    if match:
        return f"{match.group(1)} is missing (the vendor's SDK is not installed)"
    match = re.search(r"undefined symbol: (\S+)", text)
    if match:
        return f"the plugin does not load: undefined symbol {match.group(1)}"
    for line in log:
        if "Unexpected SoC" in line or "Failed to" in line:
            return line.split("] ", 1)[-1].strip()[:300]
    said = [line for line in log if "ERROR" in line]
    return (said[-1].split("] ", 1)[-1] if said else "the partition step failed without a message")[:300]


def inspect_litert(path: Path) -> FileInspection:
    from pocketbert.formats.tflite.runner import TfliteRunner

    runner = TfliteRunner(path, threads=1)  # a file LiteRT cannot load is refused here, in one line
    cpu = cpu_check(path)
    inputs = _rows(runner.signature.get_input_details())
    outputs = _rows(runner.signature.get_output_details())
    with warnings.catch_warnings():  # JAX's at-fork warning (see _run), also where a library forks
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
        checks = [cpu, gpu_check(path, cpu.of), *npu_checks(path)]
    return FileInspection(str(path), "tflite", path.stat().st_size, inputs, outputs, checks,
                          tensor_dtypes=_weight_dtypes(path))


def _weight_dtypes(path: Path) -> dict[str, int]:
    """Constant tensors (weights) by dtype: an NPU wants int8 here."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    counts: Counter[str] = Counter()
    subgraph = model.Subgraphs(0)
    for i in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(i)
        buffer = model.Buffers(tensor.Buffer())
        if buffer is not None and (buffer.DataLength() or buffer.Size()):
            counts[names.get(tensor.Type(), str(tensor.Type()))] += 1
    return dict(counts)
