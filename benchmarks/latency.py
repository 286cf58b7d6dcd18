"""Wall-clock latency of a runner: warm-up runs, then timed runs; median, p90, mean, min, max.

The full harness (paper protocols, on-device runs, reports) is issue 7; this is the
measurement it and the quantization sweep share.
"""

from __future__ import annotations

import time

import numpy as np


def measure(runner, inputs: dict[str, np.ndarray], warmup: int = 3, runs: int = 20, min_seconds: float = 0.0) -> dict:
    for _ in range(warmup):
        runner(inputs)
    times = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        begin = time.perf_counter()
        runner(inputs)
        times.append((time.perf_counter() - begin) * 1e3)
    values = np.array(times)
    return {
        "median_ms": float(np.median(values)),
        "p90_ms": float(np.percentile(values, 90)),
        "mean_ms": float(values.mean()),
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
        "runs": len(times),
    }
