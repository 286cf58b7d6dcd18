"""bench on files pocketbert did not export, interleaved comparisons, and measurements that
say when the machine was busy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest

from helpers import assert_one_line_error, pocketbert

from pocketbert.benchmarks.harness import Settings, measure
from pocketbert.benchmarks.interleave import combined, interleaved, ratio_rows
from pocketbert.benchmarks.noise import BUSY_CORES, machine_load, noise_reasons, sample
from pocketbert.benchmarks.report import cpu_isa
from pocketbert.benchmarks.results import Measurement
from pocketbert.cli import main
from pocketbert.export import ExportOptions, export_model
from pocketbert.formats import open_foreign, open_runner
from pocketbert.models import create_checkpoint
from pocketbert.contracts.foreign import input_roles
from pocketbert.contracts.spec import full_length_inputs

pytestmark = pytest.mark.integration

SEQ = 32
FAST = ["--num-runs", "3", "--min-secs", "0", "--warmup-runs", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A 2-layer MobileBERT in every format, and each model file copied out of its export."""
    root = tmp_path_factory.mktemp("foreign")
    create_checkpoint("mobilebert", root / "ckpt", task="text-classification", layers=2, seed=3)
    files = {}
    for fmt, name in (("onnx", "model.onnx"), ("tflite", "model.tflite"), ("executorch", "model.pte"),
                      ("torchscript", "model.pt")):
        export_model(root / "ckpt", None, fmt, root / fmt, ExportOptions(seq_len=SEQ, static=True))
        (root / "loose").mkdir(exist_ok=True)
        files[fmt] = shutil.copy(root / fmt / name, root / "loose" / f"m{os.path.splitext(name)[1]}")
    return root, files


def renamed_onnx(source, target):
    """Our ONNX file as another exporter might write it: inputs renamed and reordered
    (segment ids first, the rest by position only)."""
    model = onnx.load(str(source))
    renames = {"token_type_ids": "segment_ids", "input_ids": "args_0", "attention_mask": "args_1"}
    for node in model.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
    inputs = {i.name: i for i in model.graph.input}
    ordered = [inputs["token_type_ids"], inputs["input_ids"], inputs["attention_mask"]]
    copies = []
    for value in ordered:
        copy = onnx.ValueInfoProto()
        copy.CopyFrom(value)
        copy.name = renames[value.name]
        copies.append(copy)
    del model.graph.input[:]
    model.graph.input.extend(copies)
    onnx.save(model, str(target))
    return target


@pytest.mark.parametrize("name", [["input_ids", "attention_mask", "token_type_ids"],
                                  ["args_0", "args_1", "args_2"],
                                  ["serving_default_input_ids:0", "serving_default_attention_mask:0"],
                                  ["input_word_ids", "input_mask", "input_type_ids"],
                                  ["segment_ids", "x", "y"]])
def test_inputs_are_told_apart_by_name_then_position(name):
    roles = input_roles(tuple(name))
    assert sorted(roles.values()) == sorted(set(roles.values())) and len(roles) == len(name)
    if name[0] == "segment_ids":
        assert roles == {"segment_ids": "token_type_ids", "x": "input_ids", "y": "attention_mask"}
    elif name[0] == "input_word_ids":
        assert roles == {"input_word_ids": "input_ids", "input_mask": "attention_mask",
                         "input_type_ids": "token_type_ids"}
    else:
        assert list(roles.values()) == ["input_ids", "attention_mask", "token_type_ids"][:len(name)]


def test_a_renamed_reordered_onnx_gets_the_right_inputs(exports, tmp_path):
    """Fed by role, the foreign copy gives our file's logits: a swapped mask or segment input
    would not (the inputs below are padded and in two segments)."""
    root, _ = exports
    foreign = renamed_onnx(root / "onnx" / "model.onnx", tmp_path / "other.onnx")
    ours, theirs = open_runner(root / "onnx"), open_foreign(foreign)
    assert theirs.input_names == ("segment_ids", "args_0", "args_1") and theirs.fixed_sequence_length == SEQ
    ids = full_length_inputs(ours.input_names, 1000, (1, SEQ), seed=4)
    ids["attention_mask"][:, SEQ // 2:] = 0
    roles = input_roles(theirs.input_names)
    expected = ours(ids)["logits"]
    got = next(iter(theirs({name: ids[role] for name, role in roles.items()}).values()))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    swapped = {"segment_ids": ids["attention_mask"], "args_0": ids["input_ids"], "args_1": ids["token_type_ids"]}
    assert np.abs(next(iter(theirs(swapped).values())) - expected).max() > 1e-3


def test_parity_checks_foreign_files_against_the_checkpoint(exports, tmp_path):
    """A renamed, reordered ONNX and loose .tflite/.pte copies match their checkpoint on
    random ids and real sentences; the same files against another checkpoint of the same
    architecture fail (exit 1), so the check can fail."""
    root, files = exports
    renamed = renamed_onnx(root / "onnx" / "model.onnx", tmp_path / "other.onnx")
    out = tmp_path / "p.json"
    done = pocketbert("parity", root / "ckpt", renamed, files["tflite"], files["executorch"], "--max-abs", "1e-4",
                      "--json", out)
    assert done.returncode == 0, done.stderr
    entries = json.loads(out.read_text())["artifacts"]
    assert [e["format"] for e in entries] == ["onnx", "tflite", "executorch"]
    for entry in entries:
        assert entry["task"] == "text-classification" and entry["fixed_sequence_length"] == SEQ
        assert entry["sentences"]["logits"]["max_abs_diff"] < 1e-4 and entry["quality"]["label_agreement"] == 1.0
    create_checkpoint("mobilebert", tmp_path / "another", task="text-classification", layers=2, seed=4)
    done = pocketbert("parity", tmp_path / "another", renamed, "--max-abs", "1e-4")
    assert done.returncode == 1 and "FAIL" in done.stdout and "Traceback" not in done.stderr


def test_bench_measures_foreign_files_of_every_format(exports, tmp_path):
    root, files = exports
    out = tmp_path / "r.json"
    assert main(["bench", *map(str, files.values()), str(root / "onnx"), *FAST, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["measurements"]
    assert [r["format"] for r in rows] == ["onnx", "tflite", "executorch", "torchscript", "onnx"]
    for row in rows[:4]:
        assert row["extra"]["foreign"] is True and row["flops"] is None and row["label"].startswith("loose/")
        assert row["runs"] >= 3 and row["median_ms"] > 0
    # the length from the file; TorchScript keeps no shapes: --seq-len's default
    assert [r["seq_len"] for r in rows[:4]] == [SEQ, SEQ, SEQ, 128]
    assert rows[4]["architecture"] == "mobilebert" and rows[4]["flops"] > 0


def test_compare_interleaves_and_divides_round_by_round(exports, tmp_path):
    root, files = exports
    out = tmp_path / "c.json"
    assert main(["bench", "--compare", str(root / "onnx"), str(files["onnx"]), str(files["tflite"]),
                 "--rounds", "2", *FAST, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    (comparison,) = report["comparisons"]
    assert comparison["rounds"] == 2 and comparison["baseline"] == "mobilebert onnx"
    first, same, other = comparison["rows"]
    assert first["ratio"] == first["ratio_min"] == first["ratio_max"] == 1.0
    assert len(same["round_medians_ms"]) == 2 and same["ratio_min"] <= same["ratio"] <= same["ratio_max"]
    assert len(report["measurements"]) == 3 and report["measurements"][1]["extra"]["rounds"] == 2


def fake(label, median, noise=()):
    return Measurement(label=label, input=label, format="onnx", runtime="onnxruntime", device="host", threads=1,
                       seq_len=8, batch=1, median_ms=median, mean_ms=median, min_ms=median, max_ms=median,
                       p90_ms=median, runs=3, noise=list(noise))


def test_rounds_alternate_and_ratios_are_per_round():
    order, times = [], iter([10.0, 20.0, 30.0, 30.0, 10.0, 25.0])

    def measure_one(path, threads, seq, batch, label):
        order.append(path)
        return fake(path, next(times))

    per_job = interleaved(measure_one, [("A", 1, 8, 1, None), ("B", 1, 8, 1, None)], 3)
    assert order == ["A", "B", "A", "B", "A", "B"]
    _, b = ratio_rows(per_job)
    assert (b["ratio"], b["ratio_min"], b["ratio_max"]) == (2.0, 1.0, 2.5)
    a = combined(per_job[0])
    assert a.median_ms == 10.0 and a.runs == 9 and a.max_ms == 30.0
    assert any("rounds spread" in reason for reason in a.noise)  # 10, 30, 10 is not a steady file


def test_noise_rules():
    assert noise_reasons({"other_cores": 0.1, "steal_cores": 0.0}, 0.02) == []
    assert noise_reasons({"other_cores": BUSY_CORES + 0.3, "steal_cores": 0.0}, 0.02)
    assert noise_reasons({"other_cores": 0.0, "steal_cores": BUSY_CORES + 0.1}, 0.02)  # a busy hypervisor
    assert noise_reasons({"other_cores": None, "steal_cores": None}, 0.5) == ["runs spread 50% (std/mean)"]


def test_queries_of_many_lengths_are_not_noise_by_their_spread():
    from pocketbert.benchmarks.noise import RUN_CV, spread_by_length

    times, lengths = [1.0, 10.0] * 6, [8, 128] * 6  # steady per length, tenfold between them
    assert spread_by_length(times, lengths) == 0.0 < RUN_CV
    assert spread_by_length([1.0, 1.0, 3.0, 1.0], [8, 8, 8, 8]) > RUN_CV


def test_a_cpu_hog_during_a_measurement_is_flagged(exports, tmp_path):
    root, _ = exports
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)
        before = sample()
        time.sleep(0.5)
        assert machine_load(before, sample(), None, None)["other_cores"] > BUSY_CORES  # the probe sees them
        result = measure(root / "onnx", Settings(threads=1, seq_len=SEQ, num_runs=5, min_secs=0.5))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert result.machine["other_cores"] > BUSY_CORES
    assert any("other processes used" in reason for reason in result.noise)
    done = pocketbert("bench", str(root / "onnx"), *FAST, "--markdown", str(tmp_path / "r.md"))
    assert done.returncode == 0  # and without hogs, a flag only when something else ran meanwhile
    table = (tmp_path / "r.md").read_text()
    flagged = "noisy |" in table.splitlines()[-1] or "Noisy rows" in table
    assert flagged == ("pocketbert: warning:" in done.stderr and "noisy" in done.stderr)


def test_reports_name_the_cpu_isa(exports, tmp_path):
    root, _ = exports
    out = tmp_path / "r.json"
    assert main(["bench", str(root / "onnx"), *FAST, "--json", str(out)]) == 0
    host = json.loads(out.read_text())["host"]
    assert host["isa"] == cpu_isa()
    with open("/proc/cpuinfo") as info:
        if " avx2 " in info.read().replace("\n", " "):
            assert "AVX2" in host["isa"]


def test_files_bench_cannot_feed_give_one_line(tmp_path):
    from onnx import TensorProto, helper

    floats = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["embeddings"], ["out"])], "g",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])]))
    onnx.save(floats, str(tmp_path / "floats.onnx"))
    many = helper.make_model(helper.make_graph(
        [helper.make_node("Concat", [f"i{k}" for k in range(4)], ["out"], axis=0)], "g",
        [helper.make_tensor_value_info(f"i{k}", TensorProto.INT64, [1, 4]) for k in range(4)],
        [helper.make_tensor_value_info("out", TensorProto.INT64, [4, 4])]))
    onnx.save(many, str(tmp_path / "many.onnx"))
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer")
    for name, fragments in (("floats.onnx", ["floating point"]), ("many.onnx", ["takes 4 inputs"]),
                            ("junk.tflite", ["LiteRT cannot load it"])):
        assert_one_line_error(pocketbert("bench", str(tmp_path / name), *FAST), str(tmp_path / name), *fragments)
    assert_one_line_error(pocketbert("bench", "--compare", str(tmp_path / "many.onnx"), *FAST), "at least two")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["floats.onnx", "junk.tflite", "many.onnx"]
