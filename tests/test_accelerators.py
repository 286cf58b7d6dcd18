"""Accelerator readiness: ``pocketbert inspect`` and ``export --accelerator`` on tiny models.

The LiteRT GPU check really runs the file when a Vulkan device exists (Mesa's lavapipe, which
.ci/run installs): then it must report full delegation and fp16-sized differences; without
one it must say why. The NPU check runs the compiler plugins the ai-edge-litert wheel ships
(Intel's loads with the openvino wheel; the others lack their vendors' SDKs, not on PyPI).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, fake_model

from pocketbert.cli import main
from pocketbert.export import ExportOptions, export_model
from pocketbert.models import registry
from pocketbert.export.inspection import inspect_path
from pocketbert.formats import get_format

pytestmark = pytest.mark.integration

SEQ = 32
NPU = get_format("tflite").accelerator_recipes["npu"]
# lavapipe from Mesa >= 23 (the first with the features Dawn requires) installs this ICD name
LAVAPIPE = Path("/usr/share/vulkan/icd.d/lvp_icd.json").exists()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("accelerators")
    out = {}
    for arch in registry.ARCHITECTURES:
        fake_model(arch, "text-classification", seed=3).save_pretrained(root / arch)
        out[arch] = root / arch
    return out


@pytest.fixture(scope="module")
def tflite_exports(checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp("tflite-exports")
    return {arch: (root / arch, export_model(source, None, "tflite", root / arch, ExportOptions(seq_len=SEQ)))
            for arch, source in checkpoints.items()}


@pytest.fixture(scope="module")
def vocab_checkpoint(tiny_checkpoint):
    """A 2-layer MobileBERT with the project's real vocabulary: what run and calibration need."""
    return tiny_checkpoint("mobilebert", "text-classification", seed=7)


@pytest.fixture(scope="module")
def vocab_tflite(vocab_checkpoint, tiny_export):
    """Its float .tflite, made once (the tests below only read it)."""
    return tiny_export(vocab_checkpoint, "tflite", seq_len=SEQ)


def _check(report, name):
    return next(c for c in report.checks if c.accelerator.startswith(name))


@pytest.mark.parametrize("arch", list(registry.ARCHITECTURES))
def test_tflite_inspection_of_every_architecture(arch, tflite_exports):
    directory, manifest = tflite_exports[arch]
    [report] = inspect_path(directory)
    assert report.static and report.kind == "tflite"
    assert [row["dtype"] for row in report.inputs] == ["int32"] * len(report.inputs)
    assert all(row["shape"] == [1, SEQ] for row in report.inputs)
    cpu = _check(report, "LiteRT CPU")
    xnnpack = manifest.details["xnnpack"]
    assert cpu.how == "ran" and (cpu.taken, cpu.of) == (xnnpack["nodes"], xnnpack["of"])
    assert cpu.fallback == xnnpack["not_delegated"]
    gpu = _check(report, "LiteRT GPU")
    if LAVAPIPE:
        assert gpu.how == "ran", gpu.reasons
        assert gpu.fully_taken and gpu.taken == cpu.of, gpu
        assert "llvmpipe" in gpu.measured["adapter"]
        # fp16 on the GPU: visibly different from the CPU but close; fp32 enforced: close too
        assert 1e-6 < gpu.measured["max_rel_diff_fp16"] < 2e-2, gpu.measured
        assert gpu.measured["max_rel_diff_fp32"] < 1e-2, gpu.measured
    else:
        assert gpu.how == "unavailable" and gpu.reasons, gpu
        assert not gpu.fully_taken


def test_npu_plugins_partition_or_say_why(tflite_exports):
    [report] = inspect_path(tflite_exports["bert"][0] / "model.tflite")
    npu = [c for c in report.checks if c.accelerator.startswith("LiteRT NPU")]
    assert {c.accelerator.split()[2] for c in npu} >= {"Qualcomm", "IntelOpenVINO", "MediaTek"}
    qualcomm = _check(report, "LiteRT NPU Qualcomm")
    assert qualcomm.how == "unavailable" and "libQnnHtp.so is missing" in qualcomm.reasons[0]
    intel = _check(report, "LiteRT NPU IntelOpenVINO")
    assert intel.how == "static", intel.reasons  # openvino is in the test extra: the plugin loads
    cpu = _check(report, "LiteRT CPU")
    assert intel.of == cpu.of and intel.partitions >= 1 and 0 < intel.taken <= intel.of


@pytest.mark.parametrize("arch", list(registry.ARCHITECTURES))
def test_onnx_checker_sees_dynamic_shapes_and_what_static_buys(arch, checkpoints, tmp_path):
    dynamic = export_model(checkpoints[arch], None, "onnx", tmp_path / "dynamic", ExportOptions(seq_len=SEQ))
    static = export_model(checkpoints[arch], None, "onnx", tmp_path / "static", ExportOptions(seq_len=SEQ, static=True))
    assert dynamic and static
    [loose] = inspect_path(tmp_path / "dynamic")
    [fixed] = inspect_path(tmp_path / "static")
    assert not loose.static and fixed.static
    nnapi_loose, nnapi_fixed = _check(loose, "ONNX Runtime NNAPI"), _check(fixed, "ONNX Runtime NNAPI")
    assert "dynamic input shapes" in nnapi_loose.reasons[0]
    assert nnapi_fixed.taken > nnapi_loose.taken
    what_if = nnapi_loose.notes[1]
    assert what_if.startswith("this graph with its shapes fixed: ") and "(export --static fixes them)" in what_if
    assert int(what_if.split(": ")[1].split("/")[0]) > nnapi_loose.taken
    assert sum(nnapi_fixed.fallback.values()) == nnapi_fixed.of - nnapi_fixed.taken
    assert "deprecated from Android 15" in nnapi_fixed.notes[0]
    assert _check(fixed, "ONNX Runtime CoreML").how == "static"
    assert _check(fixed, "ONNX Runtime XNNPACK").how == "unavailable"


@pytest.mark.parametrize("arch", list(registry.ARCHITECTURES))
def test_pte_delegates_read_from_the_file_match_the_lowering(arch, checkpoints, tmp_path):
    manifest = export_model(checkpoints[arch], None, "executorch", tmp_path / "pte", ExportOptions(seq_len=SEQ))
    [report] = inspect_path(tmp_path / "pte")
    xnnpack = _check(report, "ExecuTorch XNNPACK")
    counted = manifest.details["xnnpack"]
    assert xnnpack.partitions == counted["subgraphs"] and xnnpack.taken == counted["nodes"]
    assert sum(xnnpack.fallback.values()) == sum(counted["not_delegated"].values())
    assert [row["shape"] for row in report.inputs] == [[1, SEQ]] * len(report.inputs)


def test_torchscript_is_marked_deprecated(checkpoints, tmp_path, capsys):
    assert main(["export", str(checkpoints["bert"]), "--format", "torchscript", "-o", str(tmp_path / "ts"),
                 "--seq-len", str(SEQ)]) == 0
    assert "pocketbert: note: PyTorch Mobile" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "ts" / "manifest.json").read_text())
    assert "ExecuTorch" in manifest["deprecated"]
    reports = inspect_path(tmp_path / "ts")
    assert [r.kind for r in reports] == ["torchscript", "torchscript-lite"]
    assert all(not r.checks and "ExecuTorch" in r.notes[0] for r in reports)


def test_inspect_command_on_artifacts_and_foreign_files(tflite_exports, tmp_path, capsys):
    directory = tflite_exports["mobilebert"][0]
    report = tmp_path / "report.json"
    assert main(["inspect", str(directory), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "LiteRT CPU (XNNPACK)" in out and "verdict:" in out
    [data] = json.loads(report.read_text())
    assert data["static"] and {c["accelerator"] for c in data["checks"]} >= {"LiteRT CPU (XNNPACK)", "LiteRT GPU"}
    foreign = tmp_path / "theirs.tflite"  # a file with no manifest beside it
    shutil.copyfile(directory / "model.tflite", foreign)
    assert main(["inspect", str(foreign)]) == 0
    assert "theirs.tflite (tflite" in capsys.readouterr().out


@pytest.mark.parametrize("args,fragments", [
    (["inspect", "{tmp}/missing.tflite"], ["no such file"]),
    (["inspect", "{tmp}"], ["no manifest.json"]),
    (["inspect", "{tmp}/notes.txt"], ["unknown model file type"]),
    (["inspect", "{tmp}/junk.tflite"], ["junk.tflite"]),
])
def test_inspect_refuses_bad_paths_in_one_line(args, fragments, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "junk.tflite").write_bytes(np.random.default_rng(0).bytes(4096))
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert all(f in err for f in fragments), err


def test_export_accelerator_gpu_is_proved_by_the_gpu_check(checkpoints, tmp_path, capsys):
    out = tmp_path / "gpu"
    assert main(["export", str(checkpoints["squeezebert"]), "--format", "tflite", "--accelerator", "gpu", "-o", str(out),
                 "--seq-len", str(SEQ)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    section = manifest["accelerator_check"]
    assert section["accelerator"] == "gpu" and manifest["options"]["accelerator"] == "gpu"
    if LAVAPIPE:
        assert section["verified"] and section["fully_taken_by"] == ["LiteRT GPU"]
        assert "--accelerator gpu: fully taken by LiteRT GPU" in capsys.readouterr().out
    else:
        assert not section["verified"] and section["not_checked"]["LiteRT GPU"]
        assert "not verified here" in capsys.readouterr().err


def test_export_accelerator_refusals(checkpoints, tmp_path):
    from helpers import pocketbert

    source = checkpoints["bert"]
    done = pocketbert("export", source, "--format", "onnx", "--accelerator", "gpu", "-o", tmp_path / "a")
    assert_one_line_error(done, "--accelerator applies to --format tflite only")
    done = pocketbert("export", source, "--format", "tflite", "--accelerator", "gpu", "--batch", "2", "-o", tmp_path / "b")
    assert_one_line_error(done, "batch 1")
    done = pocketbert("export", source, "--format", "tflite", "--accelerator", "npu", "--quantize", "tflite-dynamic-int8",
                      "-o", tmp_path / "c")
    assert_one_line_error(done, f"needs --quantize {NPU}")
    done = pocketbert("export", source, "--format", "tflite", "--accelerator", "tpu", "-o", tmp_path / "d")
    assert_one_line_error(done, "--accelerator tpu", "tflite exports are made for gpu, npu")
    assert not any(tmp_path.iterdir())


def test_export_target_is_a_deprecated_alias_of_accelerator(checkpoints, tmp_path):
    """``export --target gpu|npu`` (its name before "target" meant the quality target only)
    still works for a release, with one deprecation line."""
    from helpers import pocketbert

    done = pocketbert("export", checkpoints["bert"], "--format", "tflite", "--target", "npu", "--quantize",
                      "tflite-dynamic-int8", "-o", tmp_path / "c")
    assert_one_line_error(done, f"--accelerator npu needs --quantize {NPU}")
    deprecations = [line for line in done.stderr.splitlines() if "deprecated" in line]
    assert deprecations == ["pocketbert: deprecated: --target is now --accelerator (the old spelling goes in a later "
                            "release)"], done.stderr
    assert not any(tmp_path.iterdir())


def test_compiled_model_runner_matches_the_interpreter(tflite_exports):
    from pocketbert.formats.tflite.compiled import CompiledModelRunner
    from pocketbert.formats.tflite.gpu_probe import probe_input
    from pocketbert.formats.tflite.runner import TfliteRunner

    path = tflite_exports["distilbert"][0] / "model.tflite"
    reference = TfliteRunner(path, threads=1)
    compiled = CompiledModelRunner(path, "cpu", threads=1)
    assert sorted(compiled.input_names) == sorted(reference.input_names) and compiled.fixed_sequence_length == SEQ
    inputs = probe_input(reference)
    np.testing.assert_allclose(compiled(inputs)["logits"], reference(inputs)["logits"], atol=1e-6)


def test_export_accelerator_npu_is_full_integer_and_partitioned(vocab_checkpoint, tmp_path):
    out = tmp_path / "npu"  # calibration needs the real vocabulary
    assert main(["export", str(vocab_checkpoint), "--format", "tflite", "--accelerator", "npu", "-o", str(out),
                 "--seq-len", str(SEQ)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quantization"]["name"] == NPU
    section = manifest["accelerator_check"]
    assert section["verified"] and any("IntelOpenVINO" in name for name in section["fully_taken_by"]), section
    assert "LiteRT NPU Qualcomm SA8255" in section["not_checked"]
    [report] = inspect_path(out)
    assert [row["dtype"] for row in report.outputs] == ["int16"]


def test_bench_and_run_on_the_gpu(vocab_tflite, tmp_path, capsys):
    directory = vocab_tflite
    report = tmp_path / "bench.json"
    argv = ["bench", str(directory), "--accelerator", "gpu", "--num-runs", "2", "--min-secs", "0", "--warmup-runs", "0",
            "--json", str(report)]
    if LAVAPIPE:
        assert main(argv) == 0
        [row] = json.loads(report.read_text())["measurements"]
        assert row["label"].endswith("on gpu") and row["runtime"] == "litert-gpu" and row["runs"] == 2
    else:
        assert main(argv) == 2
        assert "CompiledModel cannot load it on the GPU" in capsys.readouterr().err
    capsys.readouterr()
    # run answers on the GPU (or, without one, on the CPU after one warning line): same label as the CPU
    assert main(["run", "--task", "text-classification", "--model", str(directory), "--json", "a fine day"]) == 0
    on_cpu = json.loads(capsys.readouterr().out)
    assert main(["run", "--task", "text-classification", "--model", str(directory), "--json", "--device", "gpu",
                 "a fine day"]) == 0
    captured = capsys.readouterr()
    on_gpu = json.loads(captured.out)
    [cpu_answer], [gpu_answer] = on_cpu["result"], on_gpu["result"]
    assert gpu_answer["label"] == cpu_answer["label"] and abs(gpu_answer["score"] - cpu_answer["score"]) < 1e-2
    assert ("running on the CPU" in captured.err) == (not LAVAPIPE)


def test_accelerators_a_format_lacks_are_refused(checkpoints, tmp_path, capsys):
    export_model(checkpoints["bert"], None, "onnx", tmp_path / "onnx", ExportOptions(seq_len=SEQ))
    assert main(["bench", str(tmp_path / "onnx"), "--accelerator", "gpu", "--num-runs", "1"]) == 2
    assert "onnx files run on cpu here" in capsys.readouterr().err
    from pocketbert.formats import RunnerError, open_runner

    with pytest.raises(RunnerError, match=r"is a checkpoint \(PyTorch on the CPU\); export it first"):
        open_runner(checkpoints["bert"], accelerator="gpu")


def test_without_a_vulkan_device_the_gpu_path_says_why(vocab_tflite, tmp_path):
    """No Vulkan driver (the loader pointed at none): inspect names the reason, run falls
    back to the CPU with one warning, bench refuses in one line."""
    import os

    from helpers import pocketbert

    directory = vocab_tflite
    env = {**os.environ, "VK_ICD_FILENAMES": str(tmp_path / "no-driver.json")}
    done = pocketbert("inspect", directory, "--json", tmp_path / "r.json", env=env)
    assert done.returncode == 0, done.stderr
    [data] = json.loads((tmp_path / "r.json").read_text())
    gpu = next(c for c in data["checks"] if c["accelerator"] == "LiteRT GPU")
    assert gpu["how"] == "unavailable" and "No adapters found" in gpu["reasons"][0], gpu
    done = pocketbert("run", "--task", "text-classification", "--model", directory, "--device", "gpu", "a fine day",
                      env=env)
    assert done.returncode == 0 and "LABEL_" in done.stdout, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "running on the CPU" in line]
    assert len(warnings) == 1 and "No adapters found" in warnings[0], done.stderr
    done = pocketbert("bench", directory, "--accelerator", "gpu", "--num-runs", "1", env=env)
    assert_one_line_error(done, "CompiledModel cannot load it on the GPU")


def test_compiled_model_dequantizes_int8_logits(vocab_tflite, tmp_path):
    """A full-integer file returns int8 logits: CompiledModel's are scaled back like the
    Interpreter's, so the GPU check compares real numbers."""
    from pocketbert.formats.tflite.compiled import CompiledModelRunner
    from pocketbert.formats.tflite.gpu_probe import probe_input
    from pocketbert.formats.tflite.runner import TfliteRunner
    from pocketbert.quantize import quantize_model

    quantize_model(vocab_tflite, "tflite-full-integer-int8", tmp_path / "int8", seq_len=SEQ,
                   keep_below_floor=True)  # its outputs miss by 15%: kept, read for their dtype only
    path = tmp_path / "int8" / "model.tflite"
    reference, compiled = TfliteRunner(path, threads=1), CompiledModelRunner(path, "cpu", threads=1)
    assert compiled.output_quantization and compiled.output_quantization == reference.output_quantization
    inputs = probe_input(reference)
    np.testing.assert_allclose(compiled(inputs)["logits"], reference(inputs)["logits"], atol=1e-6)
