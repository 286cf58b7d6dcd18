"""Latency of a .tflite on an Android phone: TFLite's ``benchmark_model`` run over adb.

Phones run no Python, and benchmark_model is the tool published TFLite numbers come
from, so a phone measurement is: push the model and the binary (the user's build or
TFLite's prebuilt one for the phone's ABI) to /data/local/tmp, run the binary there, and
parse its log into a ``Measurement``. Nothing here depends on a phone being present:
adb is called through ``subprocess`` only, so tests put a fake ``adb`` on PATH.

benchmark_model reports microseconds; everything returned here is milliseconds.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pocketbert.benchmarks.results import Measurement
from pocketbert.errors import PocketbertError

REMOTE_DIR = "/data/local/tmp/pocketbert"  # world-writable and executable on every phone
ADB_TIMEOUT_S = 60.0  # devices, mkdir, chmod
PUSH_TIMEOUT_S = 600.0  # a 100 MB model over USB 2
# benchmark_model stops each of its two phases after --max_secs (150 s by default)
BENCHMARK_TIMEOUT_S = 900.0


class DeviceError(PocketbertError):
    """adb is missing, no usable phone, or benchmark_model failed on it."""


# --- benchmark_model's log ---------------------------------------------------------------

# Lines may carry a "INFO: " / "ERROR: " prefix (newer builds) or none (older ones).
_LEVEL = re.compile(r"^(?:INFO|WARNING|WARN|ERROR|VERBOSE|FATAL): ?")
_TIMINGS = re.compile(r"Inference timings in us: (.*)")
_PHASE = re.compile(r"Running benchmark for at least \d+ iterations")
_STAT = re.compile(r"\b(\w+)=(-?(?:nan|inf|\d+(?:\.\d*)?(?:e[+-]?\d+)?))", re.IGNORECASE)
_ECHO = re.compile(r"^([#A-Za-z][^:\[\]]*): \[(.*)\]$")  # "Num threads: [4]"
_MEMORY_DELTA = re.compile(r"Memory footprint delta from the start of the tool \(MB\): init=(\S+) overall=(\S+)")
_PEAK_MEMORY = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: (\S+)")
_MODEL_SIZE = re.compile(r"The input model file size \(MB\): (\S+)")
_FAILURE = re.compile(r"\b(?:fail(?:ed|ure)?|error|could not|cannot|unable)\b", re.IGNORECASE)

# "Inference timings in us" keys -> Measurement fields
_TIMING_FIELDS = {
    "Init": "init_ms",
    "First inference": "first_inference_ms",
    "Warmup (avg)": "warmup_avg_ms",
    "Inference (avg)": "mean_ms",
}
# stats of the timed phase -> Measurement fields (p5/p95 ... go to extra)
_STAT_FIELDS = {"min": "min_ms", "max": "max_ms", "avg": "mean_ms", "std": "std_ms", "median": "median_ms", "p90": "p90_ms"}


def _number(text: str) -> float | None:
    """A logged number, or None for nan/inf (the warm-up average of zero runs)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _ms(microseconds: str) -> float | None:
    value = _number(microseconds)
    return None if value is None else value / 1000.0


def _failure_line(lines: list[str]) -> str:
    """The line that explains a failed run, for a one-line error.

    The first ERROR line is the cause ("Could not open ..."); the ones after it are
    consequences ("Benchmarking failed."). Builds without log levels get the first line
    that says "failed"/"error"; without any (a crash, a wrong-ABI binary) the last line
    printed is the best clue."""
    meaningful = [line for line in lines if line]
    for test in (lambda line: line.startswith(("ERROR", "FATAL")), _FAILURE.search):
        found = next((line for line in meaningful if test(line)), None)
        if found:
            return found[:300]
    return meaningful[-1][:300] if meaningful else "it printed nothing"


def _phase_stats(line: str) -> dict[str, float]:
    """``count=50 first=.. curr=.. min=.. max=.. avg=.. std=.. [p5=.. median=.. p95=..]``.

    A phase whose runs all took the same time prints only ``count=N curr=T(all same)``."""
    stats = {key: value for key, text in _STAT.findall(line) if (value := _number(text)) is not None}
    if "avg" not in stats and "curr" in stats:
        stats.update(min=stats["curr"], max=stats["curr"], avg=stats["curr"], std=0.0)
    return stats


def parse_benchmark_model_output(text: str) -> dict:
    """benchmark_model's log -> keyword arguments for ``Measurement`` (times in ms).

    The log has two "Running benchmark for at least N iterations" phases, each followed
    by one stats line: the warm-up, then the timed runs, then the "Inference timings"
    summary. The timed phase is the last one before that summary; its stats give runs,
    min/max/mean/std and, from newer builds, the percentiles. Only keys the log reports
    are returned; ``extra`` holds the memory figures and the echoed parameters. A log
    without the summary is a failed run: ``DeviceError`` quoting the line that says why.
    """
    raw = [line.strip() for line in text.splitlines()]
    lines = [_LEVEL.sub("", line) for line in raw]
    summary = next((m for line in lines if (m := _TIMINGS.search(line))), None)
    if summary is None:
        raise DeviceError(f"benchmark_model reported no timings: {_failure_line(raw)}")

    phases: list[dict[str, float]] = []  # stats of each "Running benchmark" phase, in order
    in_phase = False
    parameters: dict[str, str] = {}
    extra: dict = {}
    for line in lines:
        if _PHASE.search(line):
            in_phase = True
        elif in_phase and "count=" in line:
            phases.append(_phase_stats(line))
            in_phase = False
        elif echo := _ECHO.match(line):
            parameters[echo.group(1)] = echo.group(2)
        elif delta := _MEMORY_DELTA.search(line):
            extra["memory_delta_init_mb"] = _number(delta.group(1))
            extra["memory_delta_overall_mb"] = _number(delta.group(2))
        elif peak := _PEAK_MEMORY.search(line):
            extra["peak_memory_mb"] = _number(peak.group(1))
        elif size := _MODEL_SIZE.search(line):
            extra["model_file_mb"] = _number(size.group(1))

    result: dict = {}
    for item in summary.group(1).split(","):
        name, _, value = item.partition(":")
        if name.strip() in _TIMING_FIELDS:
            result[_TIMING_FIELDS[name.strip()]] = _ms(value.strip())
    if phases:
        timed = phases[-1]
        result["runs"] = int(timed.get("count", 0))
        for key, value in timed.items():
            if key in _STAT_FIELDS:
                result[_STAT_FIELDS[key]] = value / 1000.0
            elif re.fullmatch(r"p\d+", key):
                extra[f"{key}_ms"] = value / 1000.0
    if len(phases) >= 2:
        result["warmup_runs"] = int(phases[-2].get("count", 0))
    if extra.get("peak_memory_mb") is not None:
        result["peak_rss_mb"] = extra["peak_memory_mb"]
    if parameters.get("Num threads", "").isdigit():  # -1 means "the runtime's default"
        result["threads"] = int(parameters["Num threads"])
    if parameters:
        extra["parameters"] = parameters
    result["extra"] = extra
    return result


# --- adb ----------------------------------------------------------------------------------


def find_adb() -> str:
    """The adb executable on PATH."""
    adb = shutil.which("adb")
    if adb is None:
        raise DeviceError(
            "adb not found on PATH: install Android platform-tools "
            "(https://developer.android.com/tools/releases/platform-tools) and add it to PATH"
        )
    return adb


def _run(command: list[str], timeout: float, check: bool = True) -> str:
    """Run an adb command and return its stdout; failures become one-line DeviceErrors."""
    args = command[3:] if command[1:2] == ["-s"] else command[1:]
    what = args[0]  # "push", "shell chmod": which call failed, short enough for one line
    if what == "shell" and args[1:]:
        what += " " + (args[1].split() or [""])[0]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"adb {what} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise DeviceError(f"cannot run {command[0]}: {exc.strerror or exc}") from None
    if check and done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[0][:300] if lines else "no output"
        raise DeviceError(f"adb {what} failed (exit {done.returncode}): {reason}")
    return done.stdout


def parse_adb_devices(text: str) -> dict[str, str]:
    """``adb devices`` output -> {serial: state}; state "device" means ready to use.

    Other states: "unauthorized" (the phone has not accepted this computer's key),
    "offline", "no permissions (...)" (udev rules on Linux)."""
    devices: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue  # header and "* daemon started successfully"
        serial, _, state = line.partition("\t") if "\t" in line else line.partition(" ")
        devices[serial.strip()] = state.strip() or "unknown"
    return devices


def choose_serial(devices: dict[str, str], serial: str | None) -> str:
    """The serial of the phone to use, or why there is none, in one line."""
    listing = ", ".join(f"{name} ({state})" for name, state in devices.items()) or "nothing"
    if serial is not None:
        if serial not in devices:
            raise DeviceError(f"device {serial} is not connected (adb devices lists {listing})")
        if devices[serial] != "device":
            raise DeviceError(f"device {serial} is {devices[serial]}, not ready: {_state_hint(devices[serial])}")
        return serial
    ready = [name for name, state in devices.items() if state == "device"]
    if len(ready) == 1:
        return ready[0]
    if len(ready) > 1:
        raise DeviceError(f"several Android devices connected ({', '.join(ready)}): pick one by serial (or set ANDROID_SERIAL)")
    if devices:
        raise DeviceError(f"no usable Android device: adb devices lists {listing}; {_state_hint(next(iter(devices.values())))}")
    raise DeviceError("no Android device found: connect a phone by USB with USB debugging on (adb devices lists nothing)")


def _state_hint(state: str) -> str:
    if state == "unauthorized":
        return "accept the USB debugging prompt on the phone"
    if state.startswith("no permissions"):
        return "this user may not open the USB device (udev rules / plugdev group)"
    return "reconnect the phone or run adb kill-server"


class AdbDevice:
    """One phone, addressed as ``adb -s SERIAL`` so a second phone plugged in later
    cannot receive our commands. ``serial=None`` takes ``$ANDROID_SERIAL`` (as adb does),
    else the only connected phone."""

    def __init__(self, serial: str | None = None, adb: str | None = None):
        self.adb = adb or find_adb()
        devices = parse_adb_devices(_run([self.adb, "devices"], ADB_TIMEOUT_S))
        self.serial = choose_serial(devices, serial or os.environ.get("ANDROID_SERIAL") or None)

    def _command(self, *args: str) -> list[str]:
        return [self.adb, "-s", self.serial, *args]

    def push(self, local: Path, remote: str) -> None:
        _run(self._command("push", str(local), remote), PUSH_TIMEOUT_S)

    def shell(self, command: str, check: bool = True, timeout: float = ADB_TIMEOUT_S) -> str:
        """Run ``command`` with the phone's sh (the caller quotes it) and return stdout.

        ``check`` raises on a non-zero exit; adb older than 7.0's shell protocol always
        exits 0, so callers that can also judge the output should."""
        return _run(self._command("shell", command), timeout, check=check)


# --- the measurement ----------------------------------------------------------------------


def tflite_input_shape(path: Path) -> tuple[int, int]:
    """(batch, seq_len) of a .tflite's first input: our exports have static [batch, seq]."""
    from pocketbert.formats.tflite.litert import interpreter_module

    interpreter = interpreter_module()
    try:
        plain = interpreter.Interpreter(
            str(path), experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        shape = [int(n) for n in plain.get_input_details()[0]["shape_signature"]]
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DeviceError(f"{path}: cannot read its input shape ({first}); pass seq_len and batch") from None
    if len(shape) < 2 or min(shape) < 1:
        raise DeviceError(f"{path}: input shape {shape} is not a static [batch, seq_len]; pass seq_len and batch")
    return shape[0], shape[-1]


def benchmark_command(
    remote_model: str,
    threads: int,
    warmup_runs: int,
    num_runs: int,
    min_secs: float,
    use_xnnpack: bool = True,
    taskset_mask: str | None = None,
    extra_flags: Sequence[str] = (),
) -> str:
    """The shell line run on the phone. ``taskset MASK`` pins it to a core set (e.g. "f0":
    the big cores of most 4+4 SoCs) so runs do not migrate between big and little cores.
    stderr joins stdout: that is where benchmark_model logs."""
    if taskset_mask is not None and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", taskset_mask):
        raise DeviceError(f"taskset mask {taskset_mask!r} is not a hexadecimal CPU mask (e.g. f0)")
    parts = ["taskset", taskset_mask] if taskset_mask else []
    parts += [
        f"{REMOTE_DIR}/benchmark_model",
        f"--graph={remote_model}",
        f"--num_threads={threads}",
        f"--warmup_runs={warmup_runs}",
        f"--num_runs={num_runs}",
        f"--min_secs={min_secs:g}",
        f"--use_xnnpack={'true' if use_xnnpack else 'false'}",
        *extra_flags,
    ]
    return " ".join(shlex.quote(part) for part in parts) + " 2>&1"


def run_benchmark_model(
    tflite: Path,
    benchmark_model: Path,
    serial: str | None,
    threads: int,
    warmup_runs: int,
    num_runs: int,
    min_secs: float,
    use_xnnpack: bool = True,
    taskset_mask: str | None = None,
    extra_flags: Sequence[str] = (),
    seq_len: int | None = None,
    batch: int | None = None,
) -> Measurement:
    """Push ``tflite`` and ``benchmark_model`` to the phone, run it, return the measurement.

    benchmark_model runs at least ``warmup_runs`` warm-up inferences (and at least 0.5 s
    of them), then at least ``num_runs`` timed ones and at least ``min_secs`` of them; the
    counts in the result are the ones it actually ran. ``seq_len``/``batch`` default to
    the file's input shape. Everything local is checked before adb is called."""
    tflite, benchmark_model = Path(tflite), Path(benchmark_model)
    for path, what in ((tflite, "model"), (benchmark_model, "benchmark_model binary")):
        if not path.is_file():
            raise DeviceError(f"{what} {path} does not exist")
    remote_model = f"{REMOTE_DIR}/{tflite.name}"
    command = benchmark_command(remote_model, threads, warmup_runs, num_runs, min_secs, use_xnnpack, taskset_mask, extra_flags)
    if seq_len is None or batch is None:
        file_batch, file_seq_len = tflite_input_shape(tflite)
        batch = file_batch if batch is None else batch
        seq_len = file_seq_len if seq_len is None else seq_len

    device = AdbDevice(serial)
    device.shell(f"mkdir -p {REMOTE_DIR}")
    device.push(tflite, remote_model)
    device.push(benchmark_model, f"{REMOTE_DIR}/benchmark_model")
    device.shell(f"chmod +x {REMOTE_DIR}/benchmark_model")
    # the log, not the exit code, decides: old adb loses the exit code, and a failed
    # run's reason is in the log
    output = device.shell(command, check=False, timeout=BENCHMARK_TIMEOUT_S)
    parsed = parse_benchmark_model_output(output)
    parsed["extra"]["command"] = command
    fields = dict(
        label=tflite.name,
        input=str(tflite),
        format="tflite",
        runtime="benchmark_model",
        device=f"adb:{device.serial}",
        threads=threads,
        seq_len=seq_len,
        batch=batch,
        file_bytes=tflite.stat().st_size,
    )
    return Measurement(**{**fields, **parsed})
