"""benchmarks/anchors.py's table from hand-made bench JSON: no venv, no export, no timing."""

from __future__ import annotations

import pytest

from pocketbert.benchmarks.anchors import (
    PAIRS,
    markdown,
    noise_summary,
    one_line_reason,
    optimum_int8_config,
    ratio_row,
)

pytestmark = pytest.mark.unit


def bench_report(ours_rounds, anchor_rounds, noise=()):
    """What `pocketbert bench --compare OURS ANCHOR` writes, reduced to what the table reads;
    its own ``ratio`` is anchor/ours (every input over the first), which must be ignored."""
    rows = [{"input": "ours.onnx", "median_ms": sorted(ours_rounds)[1], "round_medians_ms": ours_rounds,
             "ratio": 1.0, "noise": []},
            {"input": "theirs.onnx", "median_ms": sorted(anchor_rounds)[1], "round_medians_ms": anchor_rounds,
             "ratio": 99.0, "noise": list(noise)}]
    return {"comparisons": [{"threads": 1, "rounds": len(ours_rounds), "rows": rows}]}


def test_ratio_is_ours_over_anchor_round_by_round():
    row = ratio_row(bench_report([10.0, 12.0, 30.0], [20.0, 20.0, 20.0]), "ours.onnx", "theirs.onnx")
    assert row["ratio"] == pytest.approx(0.6)  # per round 0.5, 0.6, 1.5: the median, not 20/20
    assert (row["ratio_min"], row["ratio_max"]) == (pytest.approx(0.5), pytest.approx(1.5))
    assert (row["ours_ms"], row["anchor_ms"], row["rounds"]) == (12.0, 20.0, 3)
    assert row["noise"] == []


def test_table_says_ours_over_anchor_flags_noise_and_names_what_could_not_run():
    measured = {"arch": "bert", "pair": "onnx fp32", "anchor": PAIRS[0][3], "logits": {
        "ours_vs_anchor": 2e-6, "ours_vs_torch": 1e-6, "anchor_vs_torch": 1e-6, "logits_scale": 0.5},
        **ratio_row(bench_report([90.0, 92.0, 95.0], [100.0, 100.0, 100.0],
                                 ["other processes used 1.2 cores meanwhile", "other processes used 1.4 cores meanwhile"]),
                    "ours.onnx", "theirs.onnx")}
    refused = {"arch": "squeezebert", "pair": "onnx fp32", "anchor": PAIRS[0][3],
               "skipped": "optimum-onnx: exit 1: ValueError: squeezebert is not supported | yet"}
    different = {**measured, "arch": "mobilebert", "noise": [],
                 "logits": {"ours_vs_anchor": 0.5, "ours_vs_torch": 1e-6, "anchor_vs_torch": 0.5, "logits_scale": 0.5}}
    table = markdown([measured, refused, different], {"rounds": 3, "threads": 1, "num_runs": 20, "min_secs": 2,
                                                      "command": "bash scripts/anchors.sh", "seconds": 60})
    assert "**ours / anchor**" in table
    lines = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "**0.92**" in lines["bert"] and "0.90-0.95" in lines["bert"]
    assert "noisy: other processes used up to 1.4 cores meanwhile" in lines["bert"]
    assert "not measured" in lines["squeezebert"] and "squeezebert is not supported / yet" in lines["squeezebert"]
    assert lines["squeezebert"].count("|") == lines["bert"].count("|")  # the reason's pipe did not add a column
    assert "logits differ" in lines["mobilebert"] and "logits differ" not in lines["bert"]


def test_noise_reasons_fold_to_the_worst_of_each_kind():
    assert noise_summary(["runs spread 20% (std/mean)", "runs spread 31% (std/mean)", "load high"]) == [
        "runs spread up to 31% (std/mean)", "load high"]


def test_a_failed_tool_is_described_by_its_error_line():
    log = "$ optimum-cli export onnx ...\nsome progress\nValueError: mobilebert is not supported\nbye\n"
    assert one_line_reason(log) == "ValueError: mobilebert is not supported"
    assert one_line_reason("only this\n") == "only this"


@pytest.mark.parametrize("machine, isa, preset", [
    ("x86_64", ["AVX2", "FMA", "AVX-512", "AVX-512 VNNI", "AMX-INT8"], "avx512_vnni"),
    ("x86_64", ["AVX2", "FMA", "AVX-512"], "avx512"),
    ("x86_64", ["AVX2", "FMA"], "avx2"),
    ("aarch64", ["ARM dot product"], "arm64"),
])
def test_the_int8_anchor_is_optimums_preset_for_the_hosts_isa(machine, isa, preset, monkeypatch):
    import platform

    from pocketbert.benchmarks import report

    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(report, "cpu_isa", lambda: isa)
    assert optimum_int8_config() == preset
