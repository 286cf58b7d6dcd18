"""Latency of the candidates of one comparison, timed together in alternated rounds.

The sweep and the target search time every file they compare in one process, on one
machine, round after round (A B C A B C ...), so a slow stretch falls on all of them alike;
each file's figure is the median of its round medians. A row says when it should not be
trusted: other processes used the cores meanwhile, or its rounds spread.
"""

from __future__ import annotations

from pathlib import Path
from statistics import median


def time_files(directories: list[Path], threads: int, runs: int = 10, rounds: int = 3, warmup: int = 2) -> list[dict]:
    """Per directory: median_ms and p90_ms (medians over rounds), round_medians_ms and noise."""
    from pocketbert.benchmarks import latency, noise
    from pocketbert.benchmarks.interleave import spread_noise
    from pocketbert.contracts.artifact import Artifact
    from pocketbert.contracts.spec import full_length_inputs
    from pocketbert.formats import open_runner
    from pocketbert.models.configs import load_config

    prepared = []
    for directory in directories:
        runner = open_runner(directory, threads=threads)
        shape = Artifact.open(directory).spec().input_shape()
        prepared.append((runner, full_length_inputs(runner.input_names, load_config(directory).vocab_size, shape)))
    figures: list[list[dict]] = [[] for _ in prepared]
    spent = [{"wall": 0.0, "others": 0.0, "steal": 0.0} for _ in prepared]
    for _ in range(rounds):
        for index, (runner, inputs) in enumerate(prepared):
            before, load_before = noise.sample(), noise.load_average()
            figures[index].append(latency.measure(runner, inputs, warmup=warmup, runs=runs))
            load = noise.machine_load(before, noise.sample(), load_before, noise.load_average())
            spent[index]["wall"] += load["seconds"]
            spent[index]["others"] += (load["other_cores"] or 0.0) * load["seconds"]
            spent[index]["steal"] += (load["steal_cores"] or 0.0) * load["seconds"]
    rows = []
    for per_round, load in zip(figures, spent):
        medians = [f["median_ms"] for f in per_round]
        wall = max(load["wall"], 1e-9)
        machine = {"other_cores": load["others"] / wall, "steal_cores": load["steal"] / wall}
        reasons = noise.noise_reasons(machine, None) + spread_noise(medians)
        rows.append({"median_ms": round(median(medians), 3), "p90_ms": round(median(f["p90_ms"] for f in per_round), 3),
                     "round_medians_ms": [round(m, 3) for m in medians], "noise": reasons})
    return rows


def time_on_one_machine(pool, files: list, threads: int, runs: int):
    """``files`` (Trees) timed by ``timing_job`` with a machine to itself (``pool.run_exclusive``):
    the Outcome, whose node and cpu say where."""
    from pocketbert.errors import PocketbertError
    from pocketbert.executor import make_job

    timing = pool.run_exclusive(make_job("timing", f"{__name__}:timing_job", files=files, threads=threads, runs=runs))
    if not timing.ok:
        raise PocketbertError(f"timing the files failed: {timing.error}")
    return timing


def timing_job(scratch: Path, files: list, threads: int, runs: int, rounds: int = 3) -> tuple[dict, None]:
    """Every file timed in alternated rounds, batch 1 and full length, on this machine;
    ``runs`` spread over the rounds."""
    directories = [tree.unpack(scratch / f"file{index}") for index, tree in enumerate(files)]
    return {"rows": time_files(directories, threads, runs=max(3, -(-runs // rounds)), rounds=rounds)}, None
