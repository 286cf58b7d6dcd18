"""benchmark_model on a phone over adb, without a phone: recorded logs and a fake adb.

The fake ``adb`` is a script on PATH that appends each invocation's arguments to a log
file and answers ``devices``, ``push`` and ``shell`` the way adb does, printing a
recorded benchmark_model log for the benchmark command.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from pocketbert.benchmarks.device import (
    AdbDevice,
    DeviceError,
    choose_serial,
    parse_adb_devices,
    parse_benchmark_model_output,
    run_benchmark_model,
)
from pocketbert.errors import PocketbertError

REMOTE = "/data/local/tmp/pocketbert"
SERIAL = "R58M12ABCDE"

# An older build: no log-level prefixes, no percentiles; a float DistilBERT on an old
# phone, so the single warm-up run takes over 0.5 s ("count=1 curr=..."), and averages
# over a second print in scientific notation.
OLD_LOG = """\
STARTING!
Log parameter values verbosely: [0]
Min num runs: [20]
Min runs duration (seconds): [1]
Min warmup runs: [1]
Num threads: [2]
Graph: [/data/local/tmp/pocketbert/distilbert.tflite]
#threads used for CPU inference: [2]
Use xnnpack: [1]
Loaded model /data/local/tmp/pocketbert/distilbert.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.
The input model file size (MB): 265.482
Initialized session in 412.537ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1 curr=1041765

Running benchmark for at least 20 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=20 first=977738 curr=964908 min=911877 max=1112273 avg=1.00154e+06 std=39112

Inference timings in us: Init: 412537, First inference: 1041765, Warmup (avg): 1.04176e+06, Inference (avg): 1.00154e+06
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=268.121 overall=301.457
"""

# A current build: "INFO: " prefixes, percentiles on both stats lines (the warm-up's
# median must not be taken for the timed one), periodic peak memory; MobileBERT.
NEW_LOG = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [50]
INFO: Min runs duration (seconds): [1]
INFO: Min warmup runs: [5]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/pocketbert/mobilebert.tflite]
INFO: Signature to run: []
INFO: #threads used for CPU inference: [4]
INFO: Use xnnpack: [1]
INFO: Loaded model /data/local/tmp/pocketbert/mobilebert.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: XNNPACK delegate created.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.
INFO: The input model file size (MB): 25.6943
INFO: Initialized session in 33.102ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=8 first=71542 curr=65123 min=64010 max=71542 avg=66012.1 std=2311 p5=64010 median=65480 p95=71542

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=65442 curr=63201 min=62011 max=70233 avg=64321.5 std=1502 p5=62240 median=64102 p95=67315

INFO: Inference timings in us: Init: 33102, First inference: 71542, Warmup (avg): 66012.1, Inference (avg): 64321.5
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=31.2 overall=45.6
INFO: Overall peak memory footprint (MB) via periodic monitoring: 48.3
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 46 MB
INFO: + RssAnnon           : 30 MB
INFO: + RssFile + RssShmem : 16 MB
"""

MISSING_FILE_LOG = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/pocketbert/mobilebert.tflite]
INFO: #threads used for CPU inference: [4]
ERROR: Could not open '/data/local/tmp/pocketbert/mobilebert.tflite'.
ERROR: Failed to mmap model /data/local/tmp/pocketbert/mobilebert.tflite
ERROR: Benchmarking failed.
"""

# a model from a newer converter than the binary
OLD_BINARY_LOG = """\
INFO: STARTING!
INFO: Graph: [/data/local/tmp/pocketbert/mobilebert.tflite]
INFO: Loaded model /data/local/tmp/pocketbert/mobilebert.tflite
ERROR: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An older version of this builtin might be supported. Are you using an old TFLite binary with a newer model?
ERROR: Registration failed.
ERROR: Failed to initialize the interpreter
ERROR: Benchmarking failed.
"""

# an old build without log levels
UNPREFIXED_ERROR_LOG = """\
STARTING!
Graph: [/data/local/tmp/pocketbert/mobilebert.tflite]
Could not open '/data/local/tmp/pocketbert/mobilebert.tflite'.
Failed to mmap model /data/local/tmp/pocketbert/mobilebert.tflite
Benchmarking failed.
"""

WRONG_ABI_LOG = "/system/bin/sh: /data/local/tmp/pocketbert/benchmark_model: not executable: 64-bit ELF file\n"


@pytest.mark.unit
def test_parse_older_log_without_percentiles():
    parsed = parse_benchmark_model_output(OLD_LOG)
    extra = parsed.pop("extra")
    assert parsed == pytest.approx({
        "init_ms": 412.537,
        "first_inference_ms": 1041.765,
        "warmup_avg_ms": 1041.76,
        "mean_ms": 1001.54,
        "runs": 20,
        "warmup_runs": 1,
        "min_ms": 911.877,
        "max_ms": 1112.273,
        "std_ms": 39.112,
        "threads": 2,
    })
    assert "median_ms" not in parsed and "peak_rss_mb" not in parsed  # this build prints neither
    assert extra["memory_delta_init_mb"] == 268.121 and extra["memory_delta_overall_mb"] == 301.457
    assert extra["model_file_mb"] == 265.482
    assert extra["parameters"]["Graph"] == f"{REMOTE}/distilbert.tflite"
    assert extra["parameters"]["Use xnnpack"] == "1"


@pytest.mark.unit
def test_parse_newer_log_takes_percentiles_from_the_timed_phase():
    parsed = parse_benchmark_model_output(NEW_LOG)
    extra = parsed.pop("extra")
    assert parsed == pytest.approx({
        "init_ms": 33.102,
        "first_inference_ms": 71.542,
        "warmup_avg_ms": 66.0121,
        "mean_ms": 64.3215,
        "runs": 50,
        "warmup_runs": 8,  # asked for 5; benchmark_model also warms up for 0.5 s
        "min_ms": 62.011,
        "max_ms": 70.233,
        "std_ms": 1.502,
        "median_ms": 64.102,  # not the warm-up's 65.480
        "peak_rss_mb": 48.3,
        "threads": 4,
    })
    assert extra["p5_ms"] == pytest.approx(62.24) and extra["p95_ms"] == pytest.approx(67.315)
    assert (extra["memory_delta_init_mb"], extra["memory_delta_overall_mb"]) == (31.2, 45.6)
    assert extra["parameters"]["Graph"] == f"{REMOTE}/mobilebert.tflite"
    assert extra["parameters"]["Num threads"] == "4" and extra["parameters"]["Signature to run"] == ""


@pytest.mark.parametrize(
    "log, quoted",
    [
        (MISSING_FILE_LOG, "ERROR: Could not open '/data/local/tmp/pocketbert/mobilebert.tflite'."),
        (OLD_BINARY_LOG, "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'."),
        (UNPREFIXED_ERROR_LOG, "timings: Could not open '/data/local/tmp/pocketbert/mobilebert.tflite'."),
        (WRONG_ABI_LOG, "not executable: 64-bit ELF file"),
        ("", "it printed nothing"),
    ],
)
@pytest.mark.unit
def test_a_log_without_timings_is_a_one_line_error_quoting_the_cause(log, quoted):
    with pytest.raises(PocketbertError) as error:
        parse_benchmark_model_output(log)
    message = str(error.value)
    assert message.startswith("benchmark_model reported no timings: ")
    assert quoted in message and "\n" not in message


# --- adb ----------------------------------------------------------------------------------

FAKE_ADB = """\
import json, os, sys

args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:1] == ["-s"]:
    args = args[2:]
if args[0] == "devices":
    print("* daemon not running; starting now at tcp:5037")
    print("* daemon started successfully")
    print("List of devices attached")
    for entry in filter(None, os.environ["FAKE_ADB_DEVICES"].split(",")):
        serial, _, state = entry.partition("=")
        print(f"{serial}\\t{state or 'device'}")
    print()
elif args[0] == "push":
    if os.environ.get("FAKE_ADB_PUSH_ERROR"):
        print(os.environ["FAKE_ADB_PUSH_ERROR"], file=sys.stderr)
        sys.exit(1)
    size = os.path.getsize(args[1])
    print(f"{args[1]}: 1 file pushed, 0 skipped. 38.2 MB/s ({size} bytes in 0.001s)")
elif args[0] == "shell" and "benchmark_model --graph=" in args[1]:
    with open(os.environ["FAKE_ADB_BENCHMARK"]) as recorded:
        sys.stdout.write(recorded.read())
    sys.exit(int(os.environ.get("FAKE_ADB_BENCHMARK_EXIT", "0")))
"""


class FakeAdb:
    """Controls the fake adb through its environment and reads back its calls."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.monkeypatch = monkeypatch
        bin_dir = root / "bin"
        bin_dir.mkdir()
        script = bin_dir / "adb"
        script.write_text(f"#!{sys.executable}\n{FAKE_ADB}")
        script.chmod(0o755)
        self.log_path = root / "adb-calls.jsonl"
        self.output_path = root / "benchmark-output.txt"
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv("FAKE_ADB_LOG", str(self.log_path))
        monkeypatch.setenv("FAKE_ADB_BENCHMARK", str(self.output_path))
        monkeypatch.delenv("ANDROID_SERIAL", raising=False)
        self.devices(f"{SERIAL}=device")
        self.benchmark_output(NEW_LOG)

    def devices(self, listing: str) -> None:
        """``serial=state,serial=state``, as ``adb devices`` will list them."""
        self.monkeypatch.setenv("FAKE_ADB_DEVICES", listing)

    def benchmark_output(self, text: str, exit_code: int = 0) -> None:
        self.output_path.write_text(text)
        self.monkeypatch.setenv("FAKE_ADB_BENCHMARK_EXIT", str(exit_code))

    def calls(self) -> list[list[str]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


@pytest.fixture
def adb(tmp_path, monkeypatch) -> FakeAdb:
    return FakeAdb(tmp_path, monkeypatch)


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    model = tmp_path / "mobilebert.tflite"
    model.write_bytes(b"\0" * 4096)  # never opened: the tests pass seq_len and batch
    binary = tmp_path / "benchmark_model_arm64"
    binary.write_bytes(b"\x7fELF")
    return model, binary


def benchmark(files, **options):
    model, binary = files
    settings = dict(serial=None, threads=4, warmup_runs=5, num_runs=50, min_secs=1.0, seq_len=128, batch=1)
    return run_benchmark_model(model, binary, **{**settings, **options})


@pytest.mark.integration
def test_run_benchmark_model_pushes_runs_and_parses(adb, files):
    model, binary = files
    measurement = benchmark(files)

    assert adb.calls() == [
        ["devices"],
        ["-s", SERIAL, "shell", f"mkdir -p {REMOTE}"],
        ["-s", SERIAL, "push", str(model), f"{REMOTE}/mobilebert.tflite"],
        ["-s", SERIAL, "push", str(binary), f"{REMOTE}/benchmark_model"],
        ["-s", SERIAL, "shell", f"chmod +x {REMOTE}/benchmark_model"],
        ["-s", SERIAL, "shell",
         f"{REMOTE}/benchmark_model --graph={REMOTE}/mobilebert.tflite --num_threads=4 --warmup_runs=5"
         " --num_runs=50 --min_secs=1 --use_xnnpack=true 2>&1"],
    ]
    assert (measurement.format, measurement.runtime, measurement.device) == ("tflite", "benchmark_model", f"adb:{SERIAL}")
    assert (measurement.label, measurement.input) == ("mobilebert.tflite", str(model))
    assert (measurement.threads, measurement.seq_len, measurement.batch, measurement.file_bytes) == (4, 128, 1, 4096)
    assert (measurement.runs, measurement.warmup_runs) == (50, 8)
    assert measurement.mean_ms == pytest.approx(64.3215) and measurement.median_ms == pytest.approx(64.102)
    assert measurement.init_ms == pytest.approx(33.102) and measurement.peak_rss_mb == 48.3
    assert measurement.p90_ms is None  # benchmark_model prints p5/median/p95 only
    assert measurement.extra["command"] == adb.calls()[-1][-1]


@pytest.mark.integration
def test_taskset_no_xnnpack_and_extra_flags_shape_the_command(adb, files):
    adb.devices(f"emulator-5554=device,{SERIAL}=device")
    adb.benchmark_output(OLD_LOG)
    measurement = benchmark(
        files, serial=SERIAL, threads=2, warmup_runs=1, num_runs=20, min_secs=0.5,
        use_xnnpack=False, taskset_mask="f0", extra_flags=["--enable_op_profiling=true"],
    )
    assert adb.calls()[-1] == [
        "-s", SERIAL, "shell",
        f"taskset f0 {REMOTE}/benchmark_model --graph={REMOTE}/mobilebert.tflite --num_threads=2 --warmup_runs=1"
        " --num_runs=20 --min_secs=0.5 --use_xnnpack=false --enable_op_profiling=true 2>&1",
    ]
    assert measurement.median_ms is None and measurement.mean_ms == pytest.approx(1001.54)


def tiny_tflite(path: Path, batch: int, seq_len: int) -> None:
    """A one-op .tflite (input_ids + input_ids) with a [batch, seq_len] int32 input."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: str, buffer: int):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [batch, seq_len], schema.TensorType.INT32, buffer
        return t

    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs = [tensor("input_ids", 1), tensor("logits", 2)], [0], [1]
    add = schema.OperatorT()
    add.opcodeIndex, add.inputs, add.outputs = 0, [0, 0], [1]
    graph.operators = [add]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    code.version = 1
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [schema.BufferT() for _ in range(3)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())


@pytest.mark.integration
def test_seq_len_and_batch_come_from_the_tflite_input(adb, files):
    pytest.importorskip("ai_edge_litert")
    model, binary = files
    tiny_tflite(model, batch=2, seq_len=64)
    measurement = run_benchmark_model(model, binary, None, threads=4, warmup_runs=1, num_runs=50, min_secs=1)
    assert (measurement.batch, measurement.seq_len) == (2, 64)


@pytest.mark.integration
def test_local_files_and_mask_are_checked_before_any_adb_call(adb, files, tmp_path):
    model, binary = files
    with pytest.raises(PocketbertError, match="benchmark_model binary .*nope does not exist"):
        benchmark((model, tmp_path / "nope"))
    with pytest.raises(PocketbertError, match=r"model .*missing\.tflite does not exist"):
        benchmark((tmp_path / "missing.tflite", binary))
    with pytest.raises(PocketbertError, match="not a hexadecimal CPU mask"):
        benchmark(files, taskset_mask="f0; rm -rf /")
    assert adb.calls() == []


@pytest.mark.integration
def test_a_failed_benchmark_run_quotes_its_error(adb, files):
    adb.benchmark_output(MISSING_FILE_LOG, exit_code=1)
    with pytest.raises(DeviceError, match=r"reported no timings: ERROR: Could not open '/data/local/tmp/pocketbert/mobilebert\.tflite'"):
        benchmark(files)


@pytest.mark.integration
def test_a_failed_push_reports_adbs_first_stderr_line(adb, files, monkeypatch):
    monkeypatch.setenv(
        "FAKE_ADB_PUSH_ERROR",
        f"adb: error: failed to copy 'mobilebert.tflite' to '{REMOTE}/mobilebert.tflite': remote No space left on device",
    )
    with pytest.raises(DeviceError) as error:
        benchmark(files)
    assert str(error.value) == (
        f"adb push failed (exit 1): adb: error: failed to copy 'mobilebert.tflite' to '{REMOTE}/mobilebert.tflite':"
        " remote No space left on device"
    )


@pytest.mark.unit
def test_adb_missing_from_path(tmp_path, monkeypatch, files):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(PocketbertError, match="adb not found on PATH: install Android platform-tools"):
        benchmark(files)


@pytest.mark.integration
def test_no_device_connected(adb):
    adb.devices("")
    with pytest.raises(DeviceError, match="no Android device found"):
        AdbDevice()


@pytest.mark.integration
def test_two_devices_need_a_serial(adb):
    adb.devices(f"emulator-5554=device,{SERIAL}=device")
    with pytest.raises(DeviceError, match=f"several Android devices connected \\(emulator-5554, {SERIAL}\\)"):
        AdbDevice()
    assert AdbDevice(SERIAL).serial == SERIAL


@pytest.mark.integration
def test_android_serial_picks_the_device(adb, monkeypatch):
    adb.devices(f"emulator-5554=device,{SERIAL}=device")
    monkeypatch.setenv("ANDROID_SERIAL", "emulator-5554")
    assert AdbDevice().serial == "emulator-5554"


@pytest.mark.integration
def test_a_serial_that_is_not_listed(adb):
    with pytest.raises(DeviceError, match=f"device 0123456789ABCDEF is not connected \\(adb devices lists {SERIAL} \\(device\\)\\)"):
        AdbDevice("0123456789ABCDEF")


@pytest.mark.unit
def test_parse_adb_devices_and_states():
    text = (
        "* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
        "List of devices attached\nR58M12ABCDE\tdevice\nemulator-5554\toffline\n"
        "0123456789ABCDEF\tunauthorized\n9A021FFAZ\tno permissions (missing udev rules? user is in the plugdev group)\n\n"
    )
    devices = parse_adb_devices(text)
    assert devices == {
        "R58M12ABCDE": "device",
        "emulator-5554": "offline",
        "0123456789ABCDEF": "unauthorized",
        "9A021FFAZ": "no permissions (missing udev rules? user is in the plugdev group)",
    }
    assert choose_serial(devices, None) == "R58M12ABCDE"  # the only one ready
    with pytest.raises(DeviceError, match="0123456789ABCDEF is unauthorized, not ready: accept the USB debugging prompt"):
        choose_serial(devices, "0123456789ABCDEF")
    with pytest.raises(DeviceError, match="no usable Android device: adb devices lists 0123456789ABCDEF \\(unauthorized\\)"):
        choose_serial({"0123456789ABCDEF": "unauthorized"}, None)


@pytest.mark.integration
def test_cli_bench_on_a_phone_uses_the_same_report(adb, files, tmp_path, capsys):
    from pocketbert.cli import main
    from pocketbert.export import ExportOptions, export_model
    from pocketbert.models import create_checkpoint

    create_checkpoint("mobilebert", tmp_path / "ckpt", task="text-classification", layers=2, seed=3)
    export_model(tmp_path / "ckpt", None, "tflite", tmp_path / "tflite", ExportOptions(seq_len=32))
    _, binary = files
    code = main(["bench", str(tmp_path / "tflite" / "model.tflite"), "--device", f"adb:{SERIAL}",
                 "--benchmark-model", str(binary), "--threads", "4", "--json", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    (measured,) = json.loads((tmp_path / "r.json").read_text())["measurements"]
    assert (measured["device"], measured["architecture"], measured["seq_len"]) == (f"adb:{SERIAL}", "mobilebert", 32)
    assert measured["flops"] > 0 and measured["gflops_per_s"] > 0 and measured["median_ms"] == pytest.approx(64.102)
    assert "--num_threads=4" in adb.calls()[-1][-1]
    assert main(["bench", str(tmp_path / "ckpt"), "--device", "adb", "--benchmark-model", str(binary)]) == 2
    assert "--device adb runs .tflite files" in capsys.readouterr().err

    # a device pool: every file on each phone, one queue per phone, the phones at once
    other = "R58M99ZYXWV"
    adb.devices(f"{SERIAL}=device,{other}=device")
    code = main(["bench", str(tmp_path / "tflite" / "model.tflite"), "--device", f"adb:{SERIAL},adb:{other}",
                 "--benchmark-model", str(binary), "--threads", "4", "2", "--json", str(tmp_path / "pool.json")])
    assert code == 0, capsys.readouterr().err
    measured = json.loads((tmp_path / "pool.json").read_text())["measurements"]
    assert sorted(m["device"] for m in measured) == sorted(f"adb:{serial}" for serial in (SERIAL, other) for _ in (4, 2))
    runs = [call for call in adb.calls() if len(call) == 4 and call[2] == "shell" and "--graph=" in call[3]][-4:]
    assert sorted((call[1], call[3].split("--num_threads=")[1].split()[0]) for call in runs) == sorted(
        (serial, threads) for serial in (SERIAL, other) for threads in ("4", "2"))
    assert main(["bench", str(tmp_path / "tflite" / "model.tflite"), "--device", f"adb:{SERIAL},adb:{SERIAL}",
                 "--benchmark-model", str(binary)]) == 2
    assert "a phone is listed twice" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "tflite" / "model.tflite"), "--device", f"adb:{SERIAL},host",
                 "--benchmark-model", str(binary)]) == 2
    assert "a device pool lists phones as adb:SERIAL" in capsys.readouterr().err
