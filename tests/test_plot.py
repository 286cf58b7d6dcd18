"""The report's PNG (benchmarks/plot.py): reports built by hand, no model exported. The reports
here keep the layout before "runtime" became "format" (rows without protocol/model fields,
measurements without model/protocol_format): old JSON files must keep plotting; the new
layout is tested in tests/test_rows.py."""

from __future__ import annotations

import itertools

import pytest

from pocketbert.benchmarks import plot
from pocketbert.benchmarks.report import plot as report_plot

pytestmark = pytest.mark.unit

BERT_FLOPS, MOBILEBERT_FLOPS, SQUEEZEBERT_FLOPS = 22.4e9, 5.4e9, 7.4e9
PEAK_4 = 180.0  # GFLOP/s at 4 threads; no peak measured at 2


def measurement(label, arch, fmt, threads, median, flops=None, noise=(), protocols=(), p10=None, p90=None):
    return {"label": label, "input": f"/x/{label}", "format": fmt, "runtime": fmt, "device": "host",
            "threads": threads, "seq_len": 128, "batch": 1, "architecture": arch, "median_ms": median,
            "mean_ms": median, "p10_ms": p10 if p10 is not None else (median and median * 0.95),
            "p90_ms": p90 if p90 is not None else (median and median * 1.1), "min_ms": median and median * 0.9,
            "max_ms": median and median * 1.3, "flops": flops, "noise": list(noise),
            "extra": {"protocols": list(protocols)} if protocols else {}}


def protocol(name, model, paper_speedup, rows):
    return {"protocol": {"name": name, "description": f"{model} vs BERT-base", "model": model, "runtime": "tflite",
                         "threads": 4, "seq_len": 128, "batch": 1, "device": "Pixel 4", "paper_model_ms": None,
                         "paper_baseline_ms": None, "paper_speedup": paper_speedup, "source": "a paper"},
            "speedups": [{"runtime": runtime, "threads": threads, "model_ms": model_ms, "baseline_ms": bert_ms,
                          "speedup": bert_ms / model_ms if model_ms and bert_ms else None,
                          "paper_speedup": paper_speedup, "paper_runtime": runtime == "tflite", "noise": list(noise)}
                         for runtime, threads, model_ms, bert_ms, noise in rows]}


def a_report(plain=None, comparisons=None) -> dict:
    both = ["mobilebert-pixel4", "squeezebert-pixel3"]
    measurements = [
        measurement("mobilebert tflite", "mobilebert", "tflite", 4, 45.0, MOBILEBERT_FLOPS, protocols=["mobilebert-pixel4"]),
        measurement("bert tflite", "bert", "tflite", 4, 190.0, BERT_FLOPS, protocols=["mobilebert-pixel4"]),
        measurement("mobilebert onnx", "mobilebert", "onnx", 4, 50.0, MOBILEBERT_FLOPS, protocols=["mobilebert-pixel4"]),
        measurement("bert onnx", "bert", "onnx", 4, 170.0, BERT_FLOPS, noise=["other processes used 1.2 cores"],
                    protocols=["mobilebert-pixel4"]),
        measurement("squeezebert torchscript", "squeezebert", "torchscript", 2, 60.0, SQUEEZEBERT_FLOPS,
                    protocols=["squeezebert-pixel3"]),
        measurement("bert torchscript", "bert", "torchscript", 2, 150.0, BERT_FLOPS, protocols=both),
    ]
    measurements += plain if plain is not None else [
        measurement("model.tflite", None, "tflite", None, None),  # a foreign file: no median, no flops
        measurement("distilbert onnx int8", "distilbert", "onnx", 4, 12.0, 11.2e9, noise=["runs spread 22%"]),
    ]
    return {
        "schema_version": 1, "created": "2026-01-01T00:00:00+0000",
        "host": {"cpu": "AMD EPYC 7B13", "cores": 2, "machine": "x86_64", "isa": ["AVX2", "FMA"]},
        "gemm_peak_gflops": {"4": {"torch": 150.0, "peak": PEAK_4}},
        "measurements": measurements,
        "protocols": [
            protocol("mobilebert-pixel4", "mobilebert", 342 / 62,
                     [("tflite", 4, 45.0, 190.0, []), ("onnx", 4, 50.0, 170.0, ["bert: other processes used 1.2 cores"])]),
            protocol("squeezebert-pixel3", "squeezebert", 4.3, [("torchscript", 2, 60.0, 150.0, [])]),
        ],
        "comparisons": comparisons if comparisons is not None else [{
            "rounds": 3, "threads": None, "baseline": "a.onnx",
            "rows": [{"label": "a.onnx", "median_ms": 30.0, "ratio": 1.0, "ratio_min": 1.0, "ratio_max": 1.0, "noise": []},
                     {"label": "b.onnx", "median_ms": 15.0, "ratio": 0.5, "ratio_min": 0.45, "ratio_max": 0.6,
                      "noise": ["rounds spread 12%"]},
                     {"label": "c.onnx", "median_ms": None, "ratio": None, "ratio_min": None, "ratio_max": None,
                      "noise": []}]}],
    }


def test_panels_one_per_protocol_then_plain_measurements_then_each_comparison():
    panels = plot.panels(a_report())
    assert [p.kind for p in panels] == ["protocol", "protocol", "measurements", "comparison"]
    assert "mobilebert-pixel4" in panels[0].title and "4 threads" in panels[0].title and "host" in panels[0].title
    assert "squeezebert-pixel3" in panels[1].title and "2 threads" in panels[1].title
    assert [g.label.split("\n")[0] for g in panels[0].groups] == ["tflite, 4 threads", "onnx, 4 threads"]
    assert [b.label for b in panels[2].bars] == ["model.tflite · default threads", "distilbert onnx int8 · 4 threads"]
    assert "3 interleaved rounds" in panels[3].title and "a.onnx" in panels[3].title
    assert [r.baseline for r in panels[3].ratios] == [True, False, False]


def test_flop_ratio_is_bert_flops_over_the_models_and_the_floor_is_flops_over_the_peak():
    mobilebert, squeezebert = plot.panels(a_report())[:2]
    tflite = mobilebert.groups[0]
    assert tflite.flop_ratio == pytest.approx(BERT_FLOPS / MOBILEBERT_FLOPS)
    assert squeezebert.groups[0].flop_ratio == pytest.approx(BERT_FLOPS / SQUEEZEBERT_FLOPS)
    assert tflite.model.floor_ms == pytest.approx(MOBILEBERT_FLOPS / (PEAK_4 * 1e9) * 1e3)
    assert tflite.baseline.floor_ms == pytest.approx(BERT_FLOPS / (PEAK_4 * 1e9) * 1e3)
    assert squeezebert.groups[0].model.floor_ms is None  # no GEMM peak measured at 2 threads
    assert tflite.speedup == pytest.approx(190.0 / 45.0) and tflite.paper_speedup == pytest.approx(342 / 62)
    assert (tflite.model.p10_ms, tflite.model.p90_ms) == (pytest.approx(42.75), pytest.approx(49.5))


def test_int8_files_are_held_to_the_int8_peak():
    report = a_report(plain=[{**measurement("distilbert onnx int8", "distilbert", "onnx", 4, 12.0, 11.2e9),
                              "arithmetic": "int8"}], comparisons=[])
    report["int8_gemm_peak_gops"] = {"4": {"peak": 560.0}}
    bar = plot.panels(report)[-1].bars[0]
    assert bar.floor_ms == pytest.approx(11.2e9 / 560.0 / 1e6)


def test_noisy_rows_and_missing_values_are_kept_in_the_layout():
    mobilebert, _, plain, comparison = plot.panels(a_report())
    assert [g.noisy for g in mobilebert.groups] == [False, True]
    assert mobilebert.groups[1].baseline.noisy and not mobilebert.groups[1].model.noisy
    assert plain.bars[0].median_ms is None and plain.bars[0].flops is None and plain.bars[0].floor_ms is None
    assert plain.bars[1].noisy and comparison.ratios[1].noisy and comparison.ratios[2].ratio is None


def _axes_by_panel(fig):
    return [subfigure.axes for subfigure in fig.subfigs]


def test_the_figure_has_a_panel_per_layout_entry_with_log_latency_axes_and_a_host_suptitle():
    fig = plot.figure(a_report())
    axes = _axes_by_panel(fig)
    assert [len(a) for a in axes] == [2, 2, 1, 1]  # protocols: latency beside speedup
    for latency, speedup in axes[:2]:
        assert latency.get_xscale() == "log" and speedup.get_xscale() == "linear"
        assert speedup.get_xlim()[1] > max(BERT_FLOPS / MOBILEBERT_FLOPS, 342 / 62)  # every marker in view
    assert axes[2][0].get_xscale() == "log" and axes[3][0].get_xscale() == "linear"
    assert "AMD EPYC 7B13" in fig._suptitle.get_text() and "AVX2, FMA" in fig._suptitle.get_text()
    titles = [subfigure._suptitle.get_text() for subfigure in fig.subfigs]
    assert "mobilebert-pixel4" in titles[0] and "squeezebert-pixel3" in titles[1]
    texts = [t.get_text() for t in axes[0][0].texts]
    assert texts[0] == "45 ms · floor 30 ms"  # the median, and flops / peak
    assert any("noisy" in t for t in texts)  # BERT-base onnx is tagged
    legend = [t.get_text() for t in fig.subfigs[0].legends[0].get_texts()]
    assert any(t.startswith("noisy") for t in legend) and any(t.startswith("GEMM-peak floor") for t in legend)
    assert not any(t.startswith("noisy") for t in (x.get_text() for x in fig.subfigs[1].legends[0].get_texts()))
    speed_texts = [t.get_text() for t in axes[0][1].texts]
    assert speed_texts[0].startswith("4.22x measured") and "paper 5.52x" in speed_texts[0]
    assert f"FLOPs {BERT_FLOPS / MOBILEBERT_FLOPS:.2f}x" in speed_texts[0]
    assert "no median measured" in [t.get_text() for t in axes[2][0].texts]


def test_the_png_is_written_through_report_plot_and_decodes(tmp_path):
    from matplotlib.image import imread

    path = tmp_path / "report.png"
    report_plot(a_report(), path)
    image = imread(path)
    assert image.ndim == 3 and image.shape[1] == int(plot.WIDTH_INCHES * plot.DPI)
    assert image.shape[0] > 6 * plot.DPI  # four panels stacked
    assert image[..., :3].std() > 0.05  # not blank


def test_a_report_with_nothing_to_draw_still_writes_a_png_saying_so(tmp_path):
    report = {"host": {}, "gemm_peak_gflops": {}, "measurements": [], "protocols": [], "comparisons": []}
    assert plot.panels(report) == []
    fig = plot.figure(report)
    assert any("nothing to plot" in t.get_text() for t in fig.texts)
    from matplotlib.image import imread

    plot.draw(report, tmp_path / "empty.png")
    assert imread(tmp_path / "empty.png").shape[0] > 0


def test_odd_but_valid_reports_do_not_crash(tmp_path):
    report = a_report()
    report["gemm_peak_gflops"] = {}
    report["protocols"][0]["speedups"].append({"runtime": "pytorch", "threads": None, "model_ms": None,
                                                "baseline_ms": None, "speedup": None, "paper_speedup": 5.5, "noise": []})
    report["comparisons"][0]["rows"] = []
    del report["host"]["isa"]
    panels = plot.panels(report)
    assert panels[0].groups[-1].speedup is None and panels[0].groups[-1].model.median_ms is None
    plot.draw(report, tmp_path / "odd.png")


def test_a_protocol_without_a_bert_pair_is_drawn_by_its_score(tmp_path):
    mlperf = {"protocol": {"name": "mlperf-mobile-language", "model": "mobilebert", "runtime": "tflite", "threads": 4,
                           "seq_len": 384, "batch": 1, "device": "phone", "paper_speedup": None, "baseline": None,
                           "statistic": "p90", "source": "MLPerf"},
              "speedups": [], "scores": [{"runtime": "tflite", "threads": 4, "statistic": "p90", "score_ms": 66.0,
                                          "median_ms": 60.0, "valid": False, "noise": []}]}
    report = a_report(plain=[measurement("mobilebert tflite", "mobilebert", "tflite", 4, 60.0, 16e9, p90=66.0,
                                         protocols=["mlperf-mobile-language"])], comparisons=[])
    report["protocols"] = [mlperf, {"protocol": {"name": "empty"}, "speedups": []}]
    scored, empty = plot.panels(report)
    assert scored.kind == "measurements" and "p90" in scored.title
    assert scored.bars[0].median_ms == 60.0 and scored.bars[0].floor_ms == pytest.approx(16e9 / PEAK_4 / 1e6)
    assert scored.bars[0].note.startswith("p90 66 ms · not a valid run")
    assert empty.rows == 0
    plot.draw(report, tmp_path / "scored.png")


def _overlapping(labels, renderer) -> list[tuple[str, str]]:
    boxes = [(label.get_text(), label.get_window_extent(renderer)) for label in labels
             if label.get_visible() and label.get_text()]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
            if box_a.x0 < box_b.x1 and box_b.x0 < box_a.x1 and box_a.y0 < box_b.y1 and box_b.y0 < box_a.y1]


def test_tick_labels_never_overlap_with_many_rows():
    plain = [measurement(f"{arch} {fmt} {recipe}", arch, fmt, threads, 3.0 * (i + 1), 1e9 * (i + 1))
             for i, (arch, fmt, recipe, threads) in enumerate(itertools.product(
                 ("mobilebert", "squeezebert", "distilbert", "bert"), ("onnx", "tflite", "torchscript", "executorch"),
                 ("fp32", "int8"), (1, 4)))]
    report = a_report(plain=plain)
    report["protocols"][0]["speedups"] *= 8  # a protocol measured in many (runtime, threads)
    fig = plot.figure(report)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    many = next(p for p in fig.panels if p.kind == "measurements")
    assert many.rows == 64
    for ax in fig.axes:
        for labels in (ax.get_yticklabels(), ax.get_xticklabels()):
            assert _overlapping(labels, renderer) == []
    titles = [subfigure._suptitle.get_window_extent(renderer) for subfigure in fig.subfigs]
    for box in titles:  # the wrapped panel titles stay on the canvas
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width
