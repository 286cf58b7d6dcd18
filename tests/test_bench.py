"""pocketbert bench: measurements like benchmark_model's, paper protocols with speedups,
reports in three forms, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from pocketbert.benchmarks.harness import Settings, measure, measure_here
from pocketbert.benchmarks.protocols import PROTOCOLS, run_protocol
from pocketbert.cli import main
from pocketbert.export import ExportOptions, export_model
from pocketbert.models import create_checkpoint

pytestmark = pytest.mark.integration

SEQ = 32
FAST = ["--num-runs", "3", "--min-secs", "0", "--warmup-runs", "1", "--seq-len", str(SEQ)]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A protocol work dir holding 2-layer models (the protocols reuse what exists)."""
    root = tmp_path_factory.mktemp("bench")
    for arch in ("mobilebert", "bert"):
        create_checkpoint(arch, root / arch / "checkpoint", task="text-classification", layers=2, seed=1)
    export_model(root / "mobilebert" / "checkpoint", None, "onnx", root / "mobilebert" / "onnx",
                 ExportOptions(seq_len=SEQ, static=True))
    return root


def test_measurement_fields_are_consistent(work):
    result = measure(work / "mobilebert" / "onnx" / "model.onnx", Settings(threads=1, seq_len=SEQ, num_runs=5, min_secs=0))
    assert (result.format, result.runtime, result.architecture, result.device) == ("onnx", "onnxruntime", "mobilebert", "host")
    assert result.runs >= 5 and result.warmup_runs >= 1 and result.seq_len == SEQ and result.threads == 1
    assert result.min_ms <= result.median_ms <= result.p90_ms <= result.max_ms
    assert result.min_ms <= result.mean_ms <= result.max_ms and result.std_ms >= 0
    assert result.init_ms > 0 and result.first_inference_ms > 0
    assert result.peak_rss_mb >= result.extra["rss_before_load_mb"] > 50  # torch and the runtime are in
    assert result.flops > 0 and result.gflops_per_s == pytest.approx(result.flops / result.median_ms / 1e6)
    assert result.file_bytes == (work / "mobilebert" / "onnx" / "model.onnx").stat().st_size


def test_peak_rss_is_the_measuring_processs_own(work):
    """Linux keeps ru_maxrss across exec: a child started by a big process inherited its
    peak. Measured from a process holding 2 GB more, the child still reports its own."""
    import numpy as np

    from pocketbert.benchmarks.harness import _current_rss_mb

    held = np.ones(2 * 1024**3 // 8)  # resident: ones are written
    assert _current_rss_mb() > 2048
    result = measure(work / "mobilebert" / "onnx" / "model.onnx", Settings(threads=1, seq_len=SEQ, num_runs=2, min_secs=0))
    assert result.extra["rss_before_load_mb"] < result.peak_rss_mb < _current_rss_mb() - 1024
    del held


def test_timed_runs_last_at_least_min_secs(work):
    result = measure_here(work / "mobilebert" / "checkpoint", Settings(threads=1, seq_len=SEQ, num_runs=1, min_secs=0.3))
    assert result.runs > 1 and result.mean_ms * result.runs >= 300


def test_min_secs_counts_the_calls_not_the_loop_between_them():
    """An MLPerf run must hold 60 s of queries; time spent between calls is not a query's."""
    import time

    from pocketbert.benchmarks.latency import repeat_queries

    class SlowToFetch(list):  # handing out the next query costs twice what answering it does
        def __getitem__(self, index):
            time.sleep(0.002)
            return super().__getitem__(index)

    times = repeat_queries(lambda query: time.sleep(0.001), SlowToFetch([None]), count=1, seconds=0.05)
    assert sum(times) >= 50


def test_bench_inputs_write_json_markdown_and_png(work, tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["bench", str(work / "mobilebert" / "checkpoint"), str(work / "mobilebert" / "onnx"), "--threads", "1",
                 *FAST, "--json", f"{out}.json", "--markdown", f"{out}.md", "--plot", f"{out}.png"])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["schema_version"] == 1 and report["host"]["cores"] >= 1
    assert report["gemm_peak_gflops"]["1"]["peak"] > 0
    assert [m["format"] for m in report["measurements"]] == ["pytorch", "onnx"]
    assert "| mobilebert onnx | 1 |" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mobilebert pytorch" in capsys.readouterr().out


def test_int8_file_is_held_to_the_int8_gemm_peak(work, tmp_path):
    from pocketbert.benchmarks.report import held_to_peak, to_markdown
    from pocketbert.quantize import quantize_model

    int8 = tmp_path / "int8"
    quantize_model(work / "mobilebert" / "onnx", "onnx-dynamic-int8", int8)
    out = tmp_path / "r.json"
    assert main(["bench", str(work / "mobilebert" / "onnx"), str(int8), "--threads", "1", *FAST, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    float_row, int8_row = report["measurements"]
    assert (float_row["arithmetic"], int8_row["arithmetic"]) == ("float", "int8")
    int8_peak, fp32_peak = report["int8_gemm_peak_gops"]["1"], report["gemm_peak_gflops"]["1"]
    assert set(int8_peak) == {"torch", "onnxruntime", "peak"}
    assert int8_peak["peak"] > fp32_peak["peak"]  # 4x the products per instruction, even on plain AVX2
    assert held_to_peak(int8_row, report) == int8_peak["peak"] and held_to_peak(float_row, report) == fp32_peak["peak"]
    share = 100 * int8_row["gflops_per_s"] / int8_peak["peak"]
    assert f"| int8 | {share:.4g} |" in to_markdown(report)


def test_protocol_measures_the_pair_and_compares_with_the_paper(work, tmp_path):
    work_dir = tmp_path / "w"
    shutil.copytree(work, work_dir)
    protocol = PROTOCOLS["mobilebert-pixel4"]
    calls = []

    def fake_measure(path, threads, seq_len, batch, label):  # the timing itself is tested above
        calls.append((path, threads, seq_len, batch))
        result = measure(path, Settings(threads=threads, seq_len=SEQ, batch=batch, num_runs=2, min_secs=0), label)
        return result

    result = run_protocol(protocol, work_dir, ["tflite", "onnx"], [1, 2], fake_measure)
    assert (work_dir / "bert" / "tflite" / "model.tflite").is_file()  # exported on first use
    assert {(c[0].name, c[1]) for c in calls} == {(f, t) for f in ("model.tflite", "model.onnx") for t in (1, 2)}
    assert all(c[2] == 128 and c[3] == 1 for c in calls)  # the paper's seq len and batch are passed on
    rows = result.speedups
    assert [(r.format, r.threads) for r in rows] == [("tflite", 1), ("tflite", 2), ("onnx", 1), ("onnx", 2)]
    for row in rows:
        assert row.speedup == pytest.approx(row.baseline_ms / row.model_ms)
        assert row.paper_speedup == pytest.approx(342 / 62)
    assert [r.paper_format for r in rows] == [True, True, False, False]


def test_mlperf_protocol_passes_its_minimums_and_scores_the_p90(tmp_path):
    """MLPerf Mobile's language task: the QA model quantized to int8, >= 1024 queries and
    >= 60 s handed to the timing, the p90 as the score, and a short run called invalid."""
    protocol = PROTOCOLS["mlperf-mobile-language"]
    assert (protocol.model, protocol.task, protocol.seq_len, protocol.statistic) == (
        "mobilebert", "question-answering", 384, "p90")
    assert protocol.runs(quick=False) == (1024, 60.0) and protocol.runs(quick=True)[0] < 1024
    create_checkpoint("mobilebert", tmp_path / "mobilebert-question-answering" / "checkpoint",
                      task="question-answering", layers=2, seed=1)
    calls, quantized = [], []

    def fake_measure(path, threads, seq_len, batch, label, runs=None):
        calls.append((path, seq_len, label, runs))
        return measure(path, Settings(threads=threads, seq_len=seq_len, num_runs=max(2, runs[0] // 100), min_secs=0), label)

    def quantize(export_dir, recipe, out_dir, task):
        from pocketbert.quantize import quantize_model

        quantized.append((export_dir.name, recipe, task))
        quantize_model(export_dir, recipe, out_dir, task=task, eval_texts=["a short text."])

    result = run_protocol(protocol, tmp_path, ["tflite"], [1], fake_measure, quantize=quantize)
    assert quantized == [("tflite", "tflite-dynamic-int8", "question-answering")]
    ((path, seq_len, label, runs),) = calls  # no BERT-base: the score is the latency itself
    assert path == tmp_path / "mobilebert-question-answering" / "tflite-dynamic-int8" / "model.tflite"
    assert (seq_len, runs, label) == (384, (1024, 60.0), "mobilebert tflite tflite-dynamic-int8 question-answering")
    (measured,) = result.measurements
    assert measured.quantization == "tflite-dynamic-int8" and measured.arithmetic == "int8" and measured.seq_len == 384
    (score,) = result.scores
    assert result.speedups == [] and score.score_ms == measured.p90_ms and score.queries == measured.runs
    assert score.valid is False and "queries < 1024" in score.not_valid_because
    again = run_protocol(protocol, tmp_path, ["tflite"], [1], fake_measure, quantize=quantize, quick=True)
    assert len(quantized) == 1 and calls[-1][3] == protocol.runs(quick=True)  # the int8 file is reused
    assert again.scores[0].not_valid_because.startswith("--quick: ")


def test_cli_mlperf_quick_prints_the_score_and_says_it_is_not_valid(tmp_path, capsys):
    create_checkpoint("mobilebert", tmp_path / "mobilebert-question-answering" / "checkpoint",
                      task="question-answering", layers=2, seed=1)
    code = main(["bench", "--protocol", "mlperf-mobile-language", "--quick", "--threads", "1",
                 "--work-dir", str(tmp_path), "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")])
    assert code == 0, capsys.readouterr().err
    (score,) = json.loads((tmp_path / "r.json").read_text())["protocols"][0]["scores"]
    assert score["statistic"] == "p90" and score["score_ms"] > 0 and not score["valid"]
    out = capsys.readouterr().out
    assert "## mlperf-mobile-language" in out and "| no: --quick: " in out


@pytest.mark.parametrize("args, message", [
    ([], "give INPUT files to measure, --compare A B, or --protocol"),
    (["no/such/dir"], "no/such/dir: no such file or directory"),
    (["{ckpt}", "--plot", "chart.jpg"], "the chart is a PNG"),
    (["{ckpt}", "--device", "usb"], "expected host, adb or adb:SERIAL"),
    (["{ckpt}", "--device", "adb"], "--device adb needs --benchmark-model"),
    (["{ckpt}", "--benchmark-model", "bm"], "need --device adb"),
])
def test_bad_input_is_one_line(work, args, message, capsys):
    args = [a.replace("{ckpt}", str(work / "mobilebert" / "checkpoint")) for a in args]
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_truncated_file_and_oversubscribed_threads(work, tmp_path, capsys):
    broken = tmp_path / "onnx"
    shutil.copytree(work / "mobilebert" / "onnx", broken)
    model = broken / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    assert main(["bench", str(model), *FAST]) == 2
    err = capsys.readouterr().err
    assert "sha256 differs" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", str(work / "mobilebert" / "onnx"), "--threads", "64", *FAST]) == 0
    assert "pocketbert: warning: 64 threads on" in capsys.readouterr().err


def test_cli_protocols_share_the_baseline_and_report_the_paper(work, tmp_path, capsys):
    work_dir = tmp_path / "w"
    shutil.copytree(work, work_dir)
    create_checkpoint("squeezebert", work_dir / "squeezebert" / "checkpoint", task="text-classification", layers=2)
    code = main(["bench", "--protocol", "mobilebert-pixel4", "squeezebert-pixel3", "--formats", "onnx",
                 "--threads", "1", "--work-dir", str(work_dir), *FAST[:6], "--json", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    labels = sorted(m["label"] for m in report["measurements"])
    assert labels == ["bert onnx", "mobilebert onnx", "squeezebert onnx"]  # BERT-base measured once
    (bert,) = [m for m in report["measurements"] if m["architecture"] == "bert"]
    assert bert["extra"]["protocols"] == ["mobilebert-pixel4", "squeezebert-pixel3"] and bert["seq_len"] == 128
    assert [p["protocol"]["paper_speedup"] for p in report["protocols"]] == [pytest.approx(342 / 62), 4.3]
    out = capsys.readouterr().out
    assert "## squeezebert-pixel3" in out and "390 ms, BERT-base 1690 ms" in out
