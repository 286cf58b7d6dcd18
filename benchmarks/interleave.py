"""Interleaved rounds (A B A B ...), each file in a fresh process, and ratios pair by pair.

On a shared machine a slow minute falls on whatever is being measured then. Measured in
rounds that alternate, a slow stretch hits both sides of a ratio about equally, and the
ratio of each round's pair is steadier than either latency: the comparison reports the
median of those per-round ratios, with their range.
"""

from __future__ import annotations

from dataclasses import replace
from statistics import median

from pocketbert.benchmarks.noise import ROUND_CV, coefficient_of_variation
from pocketbert.benchmarks.results import Measurement


def interleaved(measure_one, jobs: list[tuple], rounds: int, status=lambda text: None) -> list[list[Measurement]]:
    """``measure_one(*job)`` for every job, ``rounds`` times in turn; per job, its rounds."""
    results: list[list[Measurement]] = [[] for _ in jobs]
    for round_number in range(rounds):
        for index, job in enumerate(jobs):
            status(f"round {round_number + 1}/{rounds}: {job[0]}")
            results[index].append(measure_one(*job))
    return results


def central(m: Measurement) -> float | None:
    return m.median_ms if m.median_ms is not None else m.mean_ms


def spread_noise(round_medians: list[float]) -> list[str]:
    """The reason to distrust a figure whose rounds disagree: a spread over ROUND_CV."""
    spread = coefficient_of_variation(round_medians)
    if spread is None or spread <= ROUND_CV:
        return []
    return [f"rounds spread {100 * spread:.0f}% (std/mean of {len(round_medians)} round medians)"]


def combined(rounds: list[Measurement]) -> Measurement:
    """One row from one job's rounds: the median of the round medians, the rounds' spread,
    and every round's noise (a spread over ROUND_CV is noise too)."""
    if len(rounds) == 1:
        return rounds[0]
    medians = [central(m) for m in rounds]
    middle = median(medians)
    typical = min(rounds, key=lambda m: abs(central(m) - middle))  # its other statistics stand for the rounds
    spread = coefficient_of_variation(medians)
    noise = list(dict.fromkeys(reason for m in rounds for reason in m.noise)) + spread_noise(medians)
    extra = {**typical.extra, "rounds": len(rounds), "round_medians_ms": medians, "round_cv": spread}
    known = [m for m in rounds if m.min_ms is not None]
    result = replace(typical, median_ms=middle, noise=noise, extra=extra, runs=sum(m.runs for m in rounds))
    if len(known) == len(rounds):  # the host harness's rows (a phone's lack some)
        result = replace(result, min_ms=min(m.min_ms for m in rounds), max_ms=max(m.max_ms for m in rounds),
                         mean_ms=sum(m.mean_ms * m.runs for m in rounds) / max(1, result.runs),
                         p90_ms=median(m.p90_ms for m in rounds),
                         p10_ms=median(m.p10_ms for m in rounds) if all(m.p10_ms is not None for m in rounds) else None)
    return result.with_flops(result.flops)


def ratio_rows(per_job: list[list[Measurement]]) -> list[dict]:
    """Each job against the first, round by round: latency ratio (median, min, max over rounds)."""
    first = per_job[0]
    rows = []
    for rounds in per_job:
        ratios = [central(m) / central(base) for m, base in zip(rounds, first) if central(base)]
        row = combined(rounds)
        rows.append({"label": row.label, "input": row.input, "threads": row.threads, "median_ms": row.median_ms,
                     "round_medians_ms": [central(m) for m in rounds],
                     "ratio": median(ratios) if ratios else None,
                     "ratio_min": min(ratios) if ratios else None, "ratio_max": max(ratios) if ratios else None,
                     "noise": row.noise})
    return rows
