"""Wall-clock latency of a runner: warm-up runs, then timed runs; median, p90, mean, min, max.

The one timing loop: the harness (a fresh process per file, benchmark_model's protocol)
and the quantization sweep both time with ``repeat``.
"""

from __future__ import annotations

import time

import numpy as np


def timed(runner, inputs) -> float:
    """One call, in milliseconds."""
    begin = time.perf_counter()
    runner(inputs)
    return (time.perf_counter() - begin) * 1e3


def repeat(runner, inputs, count: int, seconds: float = 0.0) -> list[float]:
    """At least ``count`` calls and at least ``seconds`` of them."""
    return repeat_queries(runner, [inputs], count, seconds)


def repeat_queries(runner, queries: list, count: int, seconds: float = 0.0) -> list[float]:
    """One call per query, in turn, cycling: at least ``count`` calls and ``seconds`` of them
    (MLPerf's single stream: the next query starts when the last one is answered).

    ``seconds`` counts the calls' own time, the figure reports check a run's length by
    (runs x mean): a wall-clock stop also counted the loop between calls, so a 60 s MLPerf
    run ended at 59.99 s of queries and was reported invalid."""
    times: list[float] = []
    total_ms = 0.0
    while len(times) < count or total_ms < seconds * 1e3:
        times.append(timed(runner, queries[len(times) % len(queries)]))
        total_ms += times[-1]
    return times


def measure(runner, inputs: dict[str, np.ndarray], warmup: int = 3, runs: int = 20, min_seconds: float = 0.0) -> dict:
    repeat(runner, inputs, warmup)
    values = np.array(repeat(runner, inputs, runs, min_seconds))
    return {
        "median_ms": float(np.median(values)),
        "p90_ms": float(np.percentile(values, 90)),
        "p10_ms": float(np.percentile(values, 10)),
        "mean_ms": float(values.mean()),
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
        "runs": len(values),
    }
