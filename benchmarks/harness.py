"""Latency of one input (checkpoint or model file), measured the way benchmark_model does.

Each measurement runs in a fresh Python process (``python -m pocketbert.benchmarks.harness
SPEC_JSON``): init time then includes the runtime's real cold start, one input's threads
or memory cannot leak into the next, and the process's peak RSS belongs to one model.
Protocol per benchmark_model: load (init), one first inference, warm-up runs (at least
``warmup_runs`` and at least ``warmup_secs``), then timed runs (at least ``num_runs`` and at
least ``min_secs``). Inputs are full-length (every position a real token), as the papers'
seq-128 figures are.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pocketbert.benchmarks import latency, noise
from pocketbert.benchmarks.results import Measurement
from pocketbert.contracts.recipe import arithmetic
from pocketbert.contracts.spec import DEFAULT_SEQUENCE_LENGTH, full_length_inputs
from pocketbert.errors import PocketbertError
from pocketbert.models.configs import read_config_dict



@dataclass(frozen=True)
class Settings:
    threads: int | None = None  # None: the runtime's default
    seq_len: int = DEFAULT_SEQUENCE_LENGTH
    batch: int = 1
    warmup_runs: int = 1
    warmup_secs: float = 0.5
    num_runs: int = 50
    min_secs: float = 1.0
    accelerator: str = "cpu"  # what the file runs on (Format.accelerators); never a silent fallback
    # per-query token counts of a real text (bench --lengths): each timed run is one query of
    # its length, padded to what the file takes; () = every run full-length at seq_len
    lengths: tuple[int, ...] = ()


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def warn_oversubscribed(threads: int | None) -> None:
    cores = available_cores()
    if threads is not None and threads > cores:
        warnings.warn(f"{threads} threads on {cores} cores: threads share cores, latency is not what "
                      f"{threads} real cores would give", stacklevel=2)


def describe(path: Path) -> dict:
    """Format, runtime, architecture, recipe and size of an input, from its manifest or
    config.json, without loading the model."""
    from pocketbert.formats import format_for_file
    from pocketbert.contracts.artifact import Artifact, is_artifact

    path = Path(path)
    if not path.exists():
        raise PocketbertError(f"{path}: no such file or directory")
    if path.is_dir() and not is_artifact(path):
        if not (path / "config.json").is_file():
            raise PocketbertError(f"{path}: neither a checkpoint (config.json) nor an export (manifest.json)")
        config = read_config_dict(path)
        weights = sum(f.stat().st_size for f in path.glob("*.safetensors")) + sum(f.stat().st_size for f in path.glob("*.bin"))
        return {"format": "pytorch", "runtime": "torch", "architecture": config.get("model_type"),
                "quantization": None, "arithmetic": "float", "file_bytes": weights or None, "file": path}
    if path.is_file() and not is_artifact(path.parent):
        return _describe_foreign(path)
    artifact = Artifact.open(path if path.is_dir() else path.parent)
    file = artifact.model_path() if path.is_dir() else path
    plugin = format_for_file(file)
    fmt, runtime = plugin.kind_of(file), plugin.runtime
    config = read_config_dict(artifact.directory)
    recipe = artifact.manifest.quantization or {}
    return {"format": fmt, "runtime": runtime, "architecture": config.get("model_type"), "quantization": recipe.get("name"),
            "arithmetic": arithmetic(recipe), "file_bytes": file.stat().st_size, "file": file}


def _describe_foreign(path: Path) -> dict:
    """A file pocketbert did not export: what its suffix and a config.json beside it (as
    Optimum and transformers write) say."""
    from pocketbert.formats import format_for_file

    plugin = format_for_file(path)
    config = path.parent / "config.json"
    try:
        architecture = read_config_dict(path.parent).get("model_type") if config.is_file() else None
    except PocketbertError:  # not ours to judge: the file is measured without it
        architecture = None
    return {"format": plugin.kind_of(path), "runtime": plugin.runtime, "architecture": architecture,
            "quantization": None, "file_bytes": path.stat().st_size, "file": path, "foreign": True}


def vocabulary_size(directory: Path, foreign: bool) -> int:
    """Ids to draw latency inputs from: the model's vocabulary, or for a foreign file
    without a readable config.json beside it, ids every vocabulary has."""
    from pocketbert.models.configs import load_config
    from pocketbert.contracts.foreign import SAFE_VOCABULARY

    if not foreign:
        return load_config(directory).vocab_size
    try:
        return int(read_config_dict(directory)["vocab_size"])
    except (PocketbertError, KeyError, TypeError, ValueError):
        return SAFE_VOCABULARY


def query_inputs(runner, roles: dict[str, str], vocab: int, lengths: tuple[int, ...], batch: int) -> list[dict]:
    """One input per query length, as an app would feed it: real tokens for the sentence,
    then padding (mask 0) to the file's static length; a dynamic or bucketed runner gets the
    sentence's own length. Lengths over what the file takes are cut to it, as truncation would."""
    from pocketbert.contracts.foreign import CANONICAL

    buckets = getattr(runner, "sequence_buckets", ())
    limit = runner.fixed_sequence_length or (buckets[-1] if buckets else None)
    made = {}
    for length in dict.fromkeys(min(n, limit) if limit else n for n in lengths):
        ids = full_length_inputs(CANONICAL, vocab, (batch, runner.fixed_sequence_length or length), seed=length)
        if runner.fixed_sequence_length:
            ids["attention_mask"][..., length:] = 0
            ids["input_ids"][..., length:] = 0
            ids["token_type_ids"][..., length:] = 0
        made[length] = {name: ids[role] for name, role in roles.items()}
    return [made[min(n, limit) if limit else n] for n in lengths]


def measure_here(path: Path, settings: Settings, label: str | None = None) -> Measurement:
    """The measurement itself, in this process (the subprocess entry point calls this)."""
    from pocketbert.formats import open_runner
    from pocketbert.contracts.foreign import CANONICAL, input_roles

    info = describe(path)
    rss_before = _current_rss_mb()
    start = time.perf_counter()
    runner = open_runner(path, threads=settings.threads, accelerator=settings.accelerator, foreign=True)
    init_ms = (time.perf_counter() - start) * 1e3
    config_dir = path if info["format"] == "pytorch" else info["file"].parent
    buckets = getattr(runner, "sequence_buckets", ())
    seq = runner.fixed_sequence_length or (min(settings.seq_len, buckets[-1]) if buckets else settings.seq_len)
    vocab = vocabulary_size(config_dir, info.get("foreign", False))
    roles = input_roles(runner.input_names, str(path))
    ids = full_length_inputs(CANONICAL, vocab, (settings.batch, seq))
    inputs = {name: ids[role] for name, role in roles.items()}
    queries = [inputs]
    if settings.lengths:
        queries = query_inputs(runner, roles, vocab, settings.lengths, settings.batch)
        seq = max(q[runner.input_names[0]].shape[-1] for q in queries)
    elif seq != settings.seq_len:
        takes = f"at most {seq}" if buckets else f"exactly {seq}"
        warnings.warn(f"{path} takes {takes} tokens: measured at {seq}, not {settings.seq_len}", stacklevel=2)

    first_ms = latency.timed(runner, queries[0])
    warmup = latency.repeat_queries(runner, queries, max(settings.warmup_runs, len(set(settings.lengths))),
                                    settings.warmup_secs)
    load_before, before = noise.load_average(), noise.sample()
    timed = np.array(latency.repeat_queries(runner, queries, settings.num_runs, settings.min_secs))
    machine = noise.machine_load(before, noise.sample(), load_before, noise.load_average())
    if settings.lengths:
        cv = noise.spread_by_length(timed, [len_ for _, len_ in zip(timed, _cycled(settings.lengths))])
    else:
        cv = noise.coefficient_of_variation(timed)
    result = Measurement(
        label=label or _label(path, info, settings.accelerator), input=str(path), format=info["format"],
        runtime=info["runtime"] + (f"-{settings.accelerator}" if settings.accelerator != "cpu" else ""),
        device="host", threads=settings.threads, seq_len=seq, batch=settings.batch,
        queries=_query_summary(settings.lengths, queries, runner) if settings.lengths else None,
        architecture=info["architecture"], quantization=info["quantization"], file_bytes=info["file_bytes"],
        init_ms=init_ms, first_inference_ms=first_ms, warmup_runs=len(warmup),
        warmup_avg_ms=float(np.mean(warmup)), runs=len(timed), median_ms=float(np.median(timed)),
        mean_ms=float(timed.mean()), p90_ms=float(np.percentile(timed, 90)), p10_ms=float(np.percentile(timed, 10)), std_ms=float(timed.std()),
        min_ms=float(timed.min()), max_ms=float(timed.max()), peak_rss_mb=_peak_rss_mb(),
        cv=cv, machine=machine, noise=noise.noise_reasons(machine, cv),
        extra={"rss_before_load_mb": rss_before},
    )
    return annotate(result, path)


def _cycled(values):
    while True:
        yield from values


def _query_summary(lengths, queries, runner) -> dict:
    buckets = tuple(getattr(runner, "sequence_buckets", ()))
    given = [q[runner.input_names[0]].shape[-1] for q in queries]
    fed = [next(b for b in buckets if b >= n) for n in given] if buckets else given  # what the graph ran at
    return {"count": len(lengths), "p50_tokens": float(np.median(lengths)), "p90_tokens": float(np.percentile(lengths, 90)),
            "max_tokens": max(lengths), "p50_fed": float(np.median(fed)), "buckets": list(buckets)}


def annotate(result: Measurement, path: Path) -> Measurement:
    """Architecture, recipe, task and analytic FLOPs of what was measured (the host harness
    and the adb flow alike)."""
    from pocketbert.benchmarks.flops import model_flops
    from pocketbert.models.configs import load_config

    info = describe(path)
    directory = Path(path) if info["format"] == "pytorch" else info["file"].parent
    result.architecture, result.quantization = info["architecture"], info["quantization"]
    result.arithmetic = info.get("arithmetic")
    if info.get("foreign"):
        result.extra["foreign"] = True  # not exported by pocketbert: no manifest, task or FLOPs of ours
        return result
    task = _task(directory)
    result.extra["task"] = task
    if result.queries:  # queries of many lengths: no one FLOP count
        return result
    return result.with_flops(model_flops(load_config(directory), result.seq_len, result.batch, task=task)["total"])


def measure(path: str | Path, settings: Settings, label: str | None = None, timeout: float = 1800) -> Measurement:
    """``measure_here`` in a fresh process; its one-line error becomes ours."""
    path = Path(path)
    describe(path)  # bad input fails here, before a process starts
    spec = json.dumps({"path": str(path), "settings": asdict(settings), "label": label})
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run([sys.executable, "-m", "pocketbert.benchmarks.harness", spec],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise PocketbertError(f"{path}: measurement did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        ours = [line.removeprefix("pocketbert: error: ") for line in lines if line.startswith("pocketbert: error: ")]
        said = ours[-1] if ours else lines[-1] if lines else f"measurement failed (exit {done.returncode})"
        # runtimes log on fd 2 after it too (LiteRT at exit); a runner's error names its file already
        raise PocketbertError(said if said.startswith(str(path)) else f"{path}: {said}")
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


def _peak_rss_mb() -> float:
    """This process's own high-water mark. Not getrusage's ru_maxrss: Linux keeps that across
    exec, so a measuring child started by a bench process that had grown to 1.8 GB (it
    exported models first) reported 1.8 GB for every file it measured."""
    peak = _status_mb("VmHWM:")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes


def _current_rss_mb() -> float | None:
    """Resident memory now (Linux /proc), to tell the model's share of the peak from the
    interpreter's and the libraries'."""
    return _status_mb("VmRSS:")


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _task(directory: Path) -> str | None:
    from pocketbert.contracts.artifact import Artifact, is_artifact

    if is_artifact(directory):
        return Artifact.open(directory).task
    from pocketbert.models.configs import load_config
    from pocketbert.models.registry import class_for_config

    return class_for_config(load_config(directory)).task  # a checkpoint: from config.json


def _label(path: Path, info: dict, accelerator: str = "cpu") -> str:
    if info.get("foreign"):
        return f"{path.parent.name}/{path.name}" + (f" on {accelerator}" if accelerator != "cpu" else "")
    name = info["architecture"] or path.name
    return f"{name} {info['format']}" + (f" {info['quantization']}" if info["quantization"] else "") + (
        f" on {accelerator}" if accelerator != "cpu" else "")


def _main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    try:
        result = measure_here(Path(spec["path"]), Settings(**spec["settings"]), spec["label"])
    except PocketbertError as exc:
        print("pocketbert: error: " + " ".join(str(exc).split()), file=sys.stderr)  # the line measure() passes on
        return 2
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
