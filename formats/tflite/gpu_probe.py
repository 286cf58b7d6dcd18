"""Run a .tflite once on LiteRT's GPU accelerator and print what happened as one JSON line.

A separate process (``python -m pocketbert.formats.tflite.gpu_probe FILE``): a GPU driver
that crashes or hangs takes this process down, not the caller, and Dawn's and the Vulkan
loader's messages stay in its own stderr. The output is compared with the Interpreter's
(the CPU reference) on one fixed input, in fp16 (the GPU's default) and with fp32 enforced.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def probe_input(runner) -> dict[str, np.ndarray]:
    """One deterministic input the graph takes: ids below 1000 (inside any vocabulary, the
    tiny test ones too), the first 3/4 of the positions real tokens, one segment."""
    rng = np.random.default_rng(0)
    inputs = {}
    for name, shape in runner.shapes.items():
        length = shape[-1]
        if "mask" in name:
            value = np.zeros(shape, np.int64)
            value[..., : max(1, 3 * length // 4)] = 1
        elif "type" in name:
            value = np.zeros(shape, np.int64)
        else:
            value = rng.integers(1, 1000, shape)
        inputs[name] = value
    return inputs


def measure(path: str) -> dict:
    from pocketbert.formats.tflite.compiled import CompiledModelRunner
    from pocketbert.formats.tflite.runner import TfliteRunner
    from pocketbert.contracts.runner import RunnerError

    reference = TfliteRunner(path, threads=1)
    inputs = probe_input(reference)
    expected = reference(inputs)
    result: dict = {"ran": False}
    for precision, enforce_f32 in (("fp16", False), ("fp32", True)):
        try:
            gpu = CompiledModelRunner(path, "gpu", enforce_f32=enforce_f32)
        except RunnerError as exc:
            result["reason"] = str(exc).split(" (", 1)[-1].rstrip(")")
            return result
        adapter = next((line.split("Selected adapter: ", 1)[1] for line in gpu.log if "Selected adapter: " in line), None)
        start = time.perf_counter()
        got = gpu(inputs)
        seconds = time.perf_counter() - start
        differences = {name: float(np.abs(got[name] - expected[name]).max()) for name in expected}
        scale = max(float(np.abs(expected[name]).max()) for name in expected) or 1.0
        result.update({
            "ran": True,
            "adapter": adapter,
            "fully_accelerated": gpu.fully_accelerated,
            f"max_abs_diff_{precision}": max(differences.values()),
            f"max_rel_diff_{precision}": max(differences.values()) / scale,
            f"first_run_ms_{precision}": round(seconds * 1e3, 1),
        })
    return result


def main() -> int:
    print(json.dumps(measure(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
