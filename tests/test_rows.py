"""Typed protocol rows (benchmarks/rows.py): measurements found by fields, the protocol's own
baseline in the plot and the report, and the ``bench --runtimes`` alias of ``--formats``."""

from __future__ import annotations

import pytest

from pocketbert.benchmarks import plot
from pocketbert.benchmarks.protocols import PROTOCOLS
from pocketbert.benchmarks.report import to_markdown
from pocketbert.benchmarks.results import Measurement
from pocketbert.benchmarks.rows import ProtocolResult, ScoreRow, SpeedupRow

pytestmark = pytest.mark.unit

NAME = "tinybert-vs-distilbert"


def measurement(label, model, fmt, threads, median, flops, protocols=(NAME,)) -> dict:
    return Measurement(label=label, input=f"/x/{label}", format=fmt, runtime="engine", device="host",
                       threads=threads, seq_len=128, batch=1, architecture=model, median_ms=median, mean_ms=median,
                       flops=flops, extra={"protocols": list(protocols)}, model=model, protocol_format=fmt).to_dict()


def a_report(measurements) -> dict:
    protocol = {"name": NAME, "description": "mobilebert vs DistilBERT", "model": "mobilebert", "format": "onnx",
                "threads": 1, "seq_len": 128, "batch": 1, "device": "CPU", "paper_model_ms": 10.0,
                "paper_baseline_ms": 30.0, "paper_speedup": 3.0, "source": "a paper", "baseline": "distilbert",
                "baseline_name": "DistilBERT"}
    row = SpeedupRow(protocol=NAME, model="mobilebert", baseline="distilbert", format="onnx", threads=1,
                     model_ms=10.0, baseline_ms=20.0, speedup=2.0, paper_speedup=3.0, ratio_to_paper=2 / 3,
                     paper_format=True)
    result = ProtocolResult(protocol, speedups=[row])
    return {"schema_version": 1, "created": "now", "host": {"cpu": "cpu", "cores": 2, "machine": "x86_64"},
            "gemm_peak_gflops": {}, "measurements": measurements, "protocols": [result.to_dict()], "comparisons": []}


def test_a_protocol_with_another_baseline_plots_and_reports_that_baseline():
    report = a_report([measurement("a", "mobilebert", "onnx", 1, 10.0, 5e9),
                       measurement("b", "distilbert", "onnx", 1, 20.0, 11e9)])
    (panel, *_) = plot.panels(report)
    assert panel.baseline == "DistilBERT" and "vs DistilBERT" in panel.title and "BERT-base" not in panel.title
    (group,) = panel.groups
    assert group.baseline.label == "DistilBERT" and group.flop_ratio == pytest.approx(11 / 5)
    markdown = to_markdown(report)
    assert "DistilBERT 30 ms" in markdown and "| distilbert median ms |" in markdown and "BERT-base" not in markdown
    fig = plot.figure(report)
    assert any("DistilBERT" in (ax.get_xlabel() or "") for sub in fig.subfigs for ax in sub.axes)


def test_rows_find_their_measurements_by_fields_when_labels_are_ambiguous():
    """Every label is the same text: only model, format and threads tell the rows apart."""
    report = a_report([measurement("same", "distilbert", "onnx", 2, 99.0, 1e9),  # other threads
                       measurement("same", "distilbert", "tflite", 1, 98.0, 1e9),  # other format
                       measurement("same", "mobilebert", "onnx", 1, 10.0, 5e9),
                       measurement("same", "distilbert", "onnx", 1, 20.0, 11e9),
                       measurement("same", "distilbert", "onnx", 1, 97.0, 1e9, protocols=["other"])])
    (group,) = plot.panels(report)[0].groups
    assert (group.model.flops, group.baseline.flops) == (5e9, 11e9)


def test_rows_round_trip_and_read_the_layout_before_the_rename():
    row = ScoreRow(protocol="p", model="mobilebert", format="tflite", threads=4, statistic="p90", score_ms=5.0)
    assert ScoreRow.from_dict(row.to_dict()) == row
    old = {"protocol": {"name": "p", "model": "m", "runtime": "tflite"},
           "speedups": [{"runtime": "onnx", "threads": 1, "speedup": 2.0, "paper_runtime": False}]}
    result = ProtocolResult.from_dict(old)
    assert result.protocol["format"] == "tflite" and result.baseline == "bert"
    (speedup,) = result.speedups
    assert (speedup.protocol, speedup.model, speedup.baseline, speedup.format, speedup.paper_format) == (
        "p", "m", "bert", "onnx", False)
    assert Measurement.from_dict({**measurement("a", "m", "onnx", 1, 1.0, None), "unknown": 1}).model == "m"


def test_every_protocol_names_its_baseline_and_format():
    for protocol in PROTOCOLS.values():
        assert protocol.formats_for(None) == [protocol.format]
        assert (protocol.baseline is None) == (protocol.baseline_name is None)


def test_bench_runtimes_is_a_deprecated_alias_of_formats(capsys):
    from pocketbert.cli import build_parser

    args = build_parser().parse_args(["bench", "--protocol", "all", "--runtimes", "onnx", "tflite"])
    assert args.formats == ["onnx", "tflite"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--runtimes is now --formats" in err
    assert build_parser().parse_args(["bench", "--formats", "onnx"]).formats == ["onnx"]
    assert capsys.readouterr().err == ""
