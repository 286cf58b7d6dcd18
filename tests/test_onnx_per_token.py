"""The per-token dynamic int8 rewrite (formats/onnx/per_token.py) on a graph small enough to
check by hand: one token carrying an outlier must not cost the other tokens their precision,
which is what onnxruntime's per-tensor dynamic int8 does."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pocketbert.formats.onnx.per_token import quantize_per_token

pytestmark = pytest.mark.integration

TOKENS, WIDTH, OUT = 16, 64, 48


def _two_projections(path, weight_bits: int | None = None):
    """y1 = x @ W1 + b, y2 = x @ W2: two MatMuls reading one activation (as query and key do).
    With ``weight_bits`` the weights lie on that grid per column, so that the int8 file's only
    error is the activation's."""
    rng = np.random.default_rng(0)
    w1, w2 = (rng.normal(0, 0.05, (WIDTH, OUT)).astype(np.float32) for _ in range(2))
    if weight_bits:
        steps = [np.abs(w).max(axis=0) / (2 ** (weight_bits - 1) - 1) for w in (w1, w2)]  # [OUT]
        w1, w2 = (np.round(w / step) * step for w, step in zip((w1, w2), steps))
    bias = rng.normal(0, 0.1, OUT).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"], name="first"),
             helper.make_node("Add", ["m1", "bias"], ["y1"], name="first_bias"),
             helper.make_node("MatMul", ["x", "w2"], ["y2"], name="second")]
    graph = helper.make_graph(
        nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "tokens", WIDTH])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("y1", "y2")],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(bias, "bias")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.fixture
def outlier_input():
    x = np.random.default_rng(1).normal(0, 1, (1, TOKENS, WIDTH)).astype(np.float32)
    x[0, 3, 7] = 300.0  # one token, one channel: the residual stream's outlier
    return x


def _worst_relative_error(got, want):
    """Largest error of the ordinary tokens (all but the outlier's), relative to their scale."""
    ordinary = [t for t in range(TOKENS) if t != 3]
    return float(np.abs(got[0, ordinary] - want[0, ordinary]).max() / np.abs(want[0, ordinary]).max())


@pytest.mark.parametrize("asymmetric", [False, True])
def test_one_outlier_token_leaves_the_others_precise(asymmetric, outlier_input, tmp_path):
    from onnxruntime.quantization import quantize_dynamic

    _two_projections(tmp_path / "float.onnx")
    want = _run(tmp_path / "float.onnx", outlier_input)
    details = quantize_per_token(tmp_path / "float.onnx", tmp_path / "token.onnx", asymmetric=asymmetric,
                                 weight_bits=7, excluded=set())
    assert details["int8_matmuls"] == 2 and details["float_matmuls"] == []
    per_token = _run(tmp_path / "token.onnx", outlier_input)
    quantize_dynamic(str(tmp_path / "float.onnx"), str(tmp_path / "tensor.onnx"), per_channel=True, reduce_range=True)
    per_tensor = _run(tmp_path / "tensor.onnx", outlier_input)
    for got, tensor_wise, reference in zip(per_token, per_tensor, want):
        assert _worst_relative_error(got, reference) < 0.03
        assert _worst_relative_error(tensor_wise, reference) > 0.1  # one scale for all: ~300/127 per step
        np.testing.assert_allclose(got[0, 3], reference[0, 3], rtol=0.03, atol=0.03 * np.abs(reference[0, 3]).max())


def test_the_activation_is_quantized_once_and_excluded_matmuls_stay_float(tmp_path, outlier_input):
    _two_projections(tmp_path / "float.onnx")
    details = quantize_per_token(tmp_path / "float.onnx", tmp_path / "q.onnx", asymmetric=False, weight_bits=7,
                                 excluded={"second"})
    assert details["int8_matmuls"] == 1 and details["float_matmuls"] == ["second"]
    ops = [node.op_type for node in onnx.load(str(tmp_path / "q.onnx")).graph.node]
    assert ops.count("QuantizeLinear") == 1 and ops.count("MatMulIntegerToFloat") == 1 and ops.count("MatMul") == 1
    details = quantize_per_token(tmp_path / "float.onnx", tmp_path / "both.onnx", asymmetric=False, weight_bits=7,
                                 excluded=set())
    ops = [node.op_type for node in onnx.load(str(tmp_path / "both.onnx")).graph.node]
    assert ops.count("QuantizeLinear") == 1 and ops.count("MatMulIntegerToFloat") == 2
    np.testing.assert_allclose(_run(tmp_path / "q.onnx", outlier_input)[1], _run(tmp_path / "float.onnx", outlier_input)[1],
                               rtol=1e-6)


@pytest.mark.parametrize("asymmetric", [False, True])
def test_the_rewritten_graph_carries_no_unused_constants(asymmetric, tmp_path):
    """onnxruntime warns about every unused initializer when it loads a file."""
    _two_projections(tmp_path / "float.onnx")
    quantize_per_token(tmp_path / "float.onnx", tmp_path / "q.onnx", asymmetric=asymmetric, weight_bits=7,
                       excluded=set())
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    used = {name for node in graph.node for name in node.input}
    assert [i.name for i in graph.initializer if i.name not in used] == []


@pytest.mark.parametrize("asymmetric", [False, True])
def test_smoothing_keeps_the_rows_whose_own_channel_is_an_outlier(asymmetric, tmp_path):
    """A channel that is large in every token (the special tokens' rows carry such channels)
    sets each row's step, and per-token scales cannot help: the other channels round to a few
    codes. Smoothing divides the channel down and folds the factor into the weights: the same
    product in float, a fraction of the error in int8, one Mul more in the graph."""
    from pocketbert.formats.onnx.smoothing import channel_ranges

    _two_projections(tmp_path / "float.onnx")
    x = np.random.default_rng(2).normal(0, 1, (1, TOKENS, WIDTH)).astype(np.float32)
    x[0, :, 7] = 150.0 * np.sign(x[0, :, 7])
    calibration = [{"x": np.random.default_rng(3).normal(0, 1, (1, TOKENS, WIDTH)).astype(np.float32) * np.where(
        np.arange(WIDTH) == 7, 150.0, 1.0).astype(np.float32)}]
    found = channel_ranges(tmp_path / "float.onnx", calibration)
    assert list(found) == ["x"] and found["x"].magnitude.argmax() == 7 and found["x"].magnitude[7] > 100
    want = _run(tmp_path / "float.onnx", x)
    plain = quantize_per_token(tmp_path / "float.onnx", tmp_path / "plain.onnx", asymmetric=asymmetric,
                               weight_bits=7, excluded=set())
    smooth = quantize_per_token(tmp_path / "float.onnx", tmp_path / "smooth.onnx", asymmetric=asymmetric,
                                weight_bits=7, excluded=set(), ranges=found, alpha=0.5)
    assert plain["smoothed_activations"] == 0 and smooth["smoothed_activations"] == 1 and smooth["smoothing_alpha"] == 0.5
    ops = [node.op_type for node in onnx.load(str(tmp_path / "smooth.onnx")).graph.node]
    assert ops.count("Mul") - [n.op_type for n in onnx.load(str(tmp_path / "plain.onnx")).graph.node].count("Mul") == 1
    assert ops.count("QuantizeLinear") == 1  # both readers share the one smoothed, quantized copy
    for before, after, reference in zip(_run(tmp_path / "plain.onnx", x), _run(tmp_path / "smooth.onnx", x), want):
        error_before = np.abs(before - reference).mean() / np.abs(reference).mean()
        error_after = np.abs(after - reference).mean() / np.abs(reference).mean()
        assert error_after < 0.5 * error_before, (error_before, error_after)


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def test_one_signed_activations_take_all_255_codes_of_a_row(tmp_path):
    """A GELU output never goes below -0.17, so symmetric rows leave half their codes unused.
    Shifted by the calibration's per-channel lows it is read with twice the resolution, and
    the shift comes back out as a constant, nothing per row: folded into the MatMul's bias
    Add, or one Sub where it has none. A two-signed activation is left symmetric."""
    from pocketbert.formats.onnx.smoothing import channel_ranges

    _two_projections(tmp_path / "float.onnx", weight_bits=7)
    rng = np.random.default_rng(4)
    x = _gelu(rng.normal(0, 1.5, (1, TOKENS, WIDTH))).astype(np.float32)
    calibration = [{"x": _gelu(rng.normal(0, 1.5, (1, TOKENS, WIDTH))).astype(np.float32)} for _ in range(4)]
    found = channel_ranges(tmp_path / "float.onnx", calibration)
    assert -0.18 < found["x"].low.min() < -0.1
    want = _run(tmp_path / "float.onnx", x)
    symmetric = quantize_per_token(tmp_path / "float.onnx", tmp_path / "sym.onnx", asymmetric=False, weight_bits=7,
                                   excluded=set(), ranges=found)
    shifted = quantize_per_token(tmp_path / "float.onnx", tmp_path / "shift.onnx", asymmetric=False, weight_bits=7,
                                 excluded=set(), ranges=found, shift_one_signed=True)
    assert symmetric["shifted_activations"] == 0 and shifted["shifted_activations"] == 1
    ops = [node.op_type for node in onnx.load(str(tmp_path / "shift.onnx")).graph.node]
    assert "Abs" not in ops and ops.count("Sub") == 1 and ops.count("QuantizeLinear") == 1
    for before, after, reference in zip(_run(tmp_path / "sym.onnx", x), _run(tmp_path / "shift.onnx", x), want):
        error_before = np.abs(before - reference).mean() / np.abs(reference).mean()
        error_after = np.abs(after - reference).mean() / np.abs(reference).mean()
        assert error_after < 0.65 * error_before, (error_before, error_after)  # 255 codes against ~128 (0.50, 0.57)
    signed = channel_ranges(tmp_path / "float.onnx", [{"x": rng.normal(0, 1, (1, TOKENS, WIDTH)).astype(np.float32)}])
    assert quantize_per_token(tmp_path / "float.onnx", tmp_path / "signed.onnx", asymmetric=False, weight_bits=7,
                              excluded=set(), ranges=signed, shift_one_signed=True)["shifted_activations"] == 0


def test_a_bias_add_stays_apart_from_the_gelu_after_it(tmp_path):
    """onnxruntime fuses Add + Gelu into BiasGelu when the bias is 1-D, and its CPU kernel is
    slower than the two ops (see per_token's docstring): the rewrite gives the bias as
    [1, N], and the function stays the float one's up to int8 rounding."""
    rng = np.random.default_rng(5)
    weight = rng.normal(0, 0.1, (WIDTH, OUT)).astype(np.float32)
    bias = rng.normal(0, 0.1, OUT).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="up"),
             helper.make_node("Add", ["m", "bias"], ["a"], name="up_bias"),
             helper.make_node("Gelu", ["a"], ["y"], name="gelu")]
    graph = helper.make_graph(
        nodes, "ffn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "tokens", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "bias")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(tmp_path / "float.onnx"))
    quantize_per_token(tmp_path / "float.onnx", tmp_path / "q.onnx", asymmetric=False, weight_bits=8, excluded=set())
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tmp_path / "q.onnx"), options, providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert "BiasGelu" not in ops and "Gelu" in ops and "Add" in ops
    x = rng.normal(0, 1, (1, TOKENS, WIDTH)).astype(np.float32)
    want = _run(tmp_path / "float.onnx", x)[0]
    np.testing.assert_allclose(_run(tmp_path / "q.onnx", x)[0], want, atol=0.02 * np.abs(want).max())


def _correlated_tokens(rng, directions: np.ndarray, tokens: int) -> np.ndarray:
    """[1, tokens, WIDTH] activations on a few shared ``directions`` [D, WIDTH], as a trained
    model's are (its hidden states span a small part of their width): what error feedback
    exploits."""
    weights = rng.normal(0, 1, (1, tokens, len(directions)))
    return (weights @ directions + rng.normal(0, 0.05, (1, tokens, WIDTH))).astype(np.float32)


def test_error_feedback_rounding_cuts_the_output_error_on_unseen_tokens(tmp_path):
    """Weight codes chosen against the calibration's Gram matrix (formats/gptq.py) instead of each
    rounded to nearest: the same grid (codes within the 7-bit range), a smaller error of
    x @ W on tokens calibration never saw."""
    from pocketbert.formats.onnx.smoothing import calibration_statistics

    _two_projections(tmp_path / "float.onnx")
    rng = np.random.default_rng(7)
    directions = rng.normal(0, 1, (6, WIDTH))
    calibration = [{"x": _correlated_tokens(rng, directions, 64)} for _ in range(8)]
    seen = calibration_statistics(tmp_path / "float.onnx", calibration, grams=True)
    stacked = np.concatenate([c["x"].reshape(-1, WIDTH) for c in calibration]).astype(np.float64)
    np.testing.assert_allclose(seen.grams["x"], stacked.T @ stacked, rtol=1e-4, atol=1e-3)  # [K, K] over every row
    nearest = quantize_per_token(tmp_path / "float.onnx", tmp_path / "nearest.onnx", asymmetric=False, weight_bits=7,
                                 excluded=set())
    fitted = quantize_per_token(tmp_path / "float.onnx", tmp_path / "fitted.onnx", asymmetric=False, weight_bits=7,
                                excluded=set(), grams=seen.grams)
    assert nearest["error_feedback_matmuls"] == 0 and fitted["error_feedback_matmuls"] == 2
    for node in ("first", "second"):
        codes = [numpy_helper.to_array(next(i for i in onnx.load(str(tmp_path / f)).graph.initializer
                                            if i.name == f"{node}/w")) for f in ("nearest.onnx", "fitted.onnx")]
        assert np.abs(codes[1]).max() <= 63 and (codes[0] != codes[1]).any()
    x = _correlated_tokens(rng, directions, TOKENS)  # unseen draws on the same directions
    want = _run(tmp_path / "float.onnx", x)
    for before, after, reference in zip(_run(tmp_path / "nearest.onnx", x), _run(tmp_path / "fitted.onnx", x), want):
        error_before, error_after = np.abs(before - reference).mean(), np.abs(after - reference).mean()
        assert error_after < 0.7 * error_before, (error_before, error_after)  # 0.46 measured


def test_an_even_activation_takes_one_range_in_the_fused_kernel_with_its_bias(tmp_path):
    """An activation without outlier rows or channels loses nothing to one range per tensor:
    it goes to onnxruntime's DynamicQuantizeMatMul (one op, the bias Add taken in) and stays
    as close to float as per-token rows keep it."""
    from pocketbert.formats.onnx.smoothing import OneRange

    _two_projections(tmp_path / "float.onnx", weight_bits=7)
    x = np.random.default_rng(2).normal(0, 1, (1, TOKENS, WIDTH)).astype(np.float32)
    want = _run(tmp_path / "float.onnx", x)
    details = quantize_per_token(tmp_path / "float.onnx", tmp_path / "fused.onnx", asymmetric=False, weight_bits=7,
                                 excluded=set(), per_tensor={"x"})
    assert details["per_tensor_matmuls"] == 2
    ops = [node.op_type for node in onnx.load(str(tmp_path / "fused.onnx")).graph.node]
    assert ops == ["DynamicQuantizeMatMul"] * 2  # no row ops, the bias Add inside
    quantize_per_token(tmp_path / "float.onnx", tmp_path / "rows.onnx", asymmetric=False, weight_bits=7, excluded=set())
    for fused, rows, reference in zip(_run(tmp_path / "fused.onnx", x), _run(tmp_path / "rows.onnx", x), want):
        error = np.abs(fused - reference).max() / np.abs(reference).max()
        assert error < 0.02 and error < 2 * np.abs(rows - reference).max() / np.abs(reference).max()
    # what decides it (PER_TOKEN_ROWS: 40 dB): one range keeps a Gaussian above it, not a tensor
    # whose one outlier value stretches the range
    even, stretched = OneRange(), OneRange()
    even.add(x[0])
    outlier = x[0].copy()
    outlier[3, 7] = 300.0
    stretched.add(outlier)
    assert even.snr_db > 40 > stretched.snr_db + 10
