"""How busy the machine was while a measurement ran, so a noisy number says so.

A latency taken while other processes compete for the cores looks like any other. The
harness samples the kernel's CPU counters (/proc/stat: every process's busy time, and the
time a hypervisor stole from this VM) and its own CPU time around the timed runs; what the
machine did beyond the measurement itself is the other processes' share, in cores. With the
spread of the timed runs (coefficient of variation) that decides whether a row is flagged.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

# flagged when other processes (and steal) used more than this many cores meanwhile ...
BUSY_CORES = 0.5
# ... or the timed runs spread this much (std / mean): preemption makes the runs bimodal
RUN_CV = 0.15
# interleaved rounds of one file that spread this much (std / mean of the round medians)
ROUND_CV = 0.10


@dataclass(frozen=True)
class CpuSample:
    wall: float  # seconds, monotonic
    busy: float | None  # seconds of CPU every process used (all cores), None without /proc/stat
    steal: float | None  # seconds the hypervisor ran other guests on our vCPUs
    own: float  # seconds of CPU this process used (all its threads)


def sample() -> CpuSample:
    busy = steal = None
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        # user nice system idle iowait irq softirq steal ...
        busy = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / hz
        steal = (fields[7] if len(fields) > 7 else 0) / hz
    except (OSError, ValueError, IndexError):
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuSample(time.monotonic(), busy, steal, usage.ru_utime + usage.ru_stime)


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def machine_load(before: CpuSample, after: CpuSample, load_before: float | None, load_after: float | None) -> dict:
    """What ran beside the measurement between two samples: other processes' CPU in cores
    (their busy time over the wall time), stolen time in cores, and the 1-minute load
    average at both ends (the kernel's, lagging; for the record)."""
    wall = max(after.wall - before.wall, 1e-9)
    others = steal = None
    if before.busy is not None and after.busy is not None:
        others = max(0.0, (after.busy - before.busy) - (after.own - before.own)) / wall
        steal = max(0.0, after.steal - before.steal) / wall
    return {"other_cores": others, "steal_cores": steal, "load_before": load_before, "load_after": load_after,
            "seconds": wall}


def noise_reasons(load: dict, cv: float | None) -> list[str]:
    """Why a measurement is not to be trusted; [] when nothing says so."""
    reasons = []
    busy = (load.get("other_cores") or 0) + (load.get("steal_cores") or 0)
    if busy > BUSY_CORES:
        reasons.append(f"other processes used {busy:.1f} cores meanwhile")
    if cv is not None and cv > RUN_CV:
        reasons.append(f"runs spread {100 * cv:.0f}% (std/mean)")
    return reasons


def coefficient_of_variation(values) -> float | None:
    import numpy as np

    values = np.asarray(list(values), dtype=float)
    if len(values) < 2 or not values.mean():
        return None
    return float(values.std() / values.mean())


def spread_by_length(times, lengths) -> float | None:
    """The runs' spread when they are queries of different lengths (bench --lengths): the
    median over lengths of each length's own coefficient of variation, so a long query
    beside a short one is not noise."""
    import numpy as np

    groups: dict[int, list[float]] = {}
    for value, length in zip(times, lengths):
        groups.setdefault(length, []).append(value)
    spreads = [coefficient_of_variation(values) for values in groups.values() if len(values) >= 3]
    spreads = [s for s in spreads if s is not None]
    return float(np.median(spreads)) if spreads else None
