"""Dynamic int8 with one activation scale per token, on ONNX Runtime's own integer kernels.

onnxruntime.quantization's dynamic mode gives a whole activation tensor one run-time scale
(DynamicQuantizeLinear), so the one token whose residual-stream outlier channel reaches ~200
sets the step for all 128 tokens, and the FFN output layer of a trained BERT loses most of its
resolution (pooled cosine 0.93 on real text with that layer alone per-tensor). LiteRT's
dynamic-range kernels scale each row instead. This rewrite does the same in ONNX: for every
MatMul with a constant weight,

    x [.., K] -> per-row |x| max -> blocked QuantizeLinear (opset 21, one block per row)
              -> com.microsoft MatMulIntegerToFloat(q, W int8 [K, N], row scale [.., 1],
                 channel scale [N])  -> y [.., N]

Weights are symmetric per output channel. The activation is quantized once however many
MatMuls read it (query, key and value share one). Symmetric rows use the fixed zero point 128
(the kernel takes one zero point per tensor); asymmetric rows give each row its own zero point
and subtract ``zero_point x scale x column sums`` from the output, which buys a bit for skewed
rows (GELU outputs) at two more elementwise passes per MatMul.

Symmetric rows waste half their codes on an activation that is never far below zero: a GELU
output lies in [-0.17, max], so the FFN's output layer reads its input at 7 bits. Given the
calibration's per-channel lows, such one-signed activations are shifted instead:

    x [.., K] + c [K] >= 0 -> per-row max -> QuantizeLinear(zero point 0) -> 255 codes per row
    -> MatMulIntegerToFloat -> - c @ W [N]  (a constant: the shift costs no per-row work)

which is the asymmetric recipe's extra bit at the symmetric recipe's cost (the Add replaces
the Abs).

With the calibration's Gram matrices the weight codes are chosen by error feedback (formats/gptq.py)
instead of rounded one by one: the same grid and kernels, a fraction of the 7-bit weights'
error where the activations actually point.

A MatMul's bias Add stays after it: the kernel's bias input is scaled by the row scales
(onnxruntime 1.32 applies a per-row A scale to the whole output, bias included). The Add
takes the bias as [1, N] with any shift constant folded in: with a 1-D bias onnxruntime fuses
the Add into a following Gelu as BiasGelu, whose CPU kernel is slower than Add + Gelu.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketbert.errors import PocketbertError, first_line
from pocketbert.formats.gptq import round_with_error_feedback
from pocketbert.formats.onnx.smoothing import ChannelRange
from pocketbert.formats.smoothquant import migration_divisors, smoothed_gram

OPSET = 21  # blocked QuantizeLinear (a per-row scale on a 3-D activation without reshapes)
# an activation is one-signed when its negative reach, summed over channels, is at most this
# part of its magnitude (GELU outputs: ~0.17 against a few units)
ONE_SIGNED_REACH = 0.25


def quantize_per_token(source: Path, target: Path, *, asymmetric: bool, weight_bits: int,
                       excluded: set[str], ranges: dict[str, ChannelRange] | None = None,
                       alpha: float = 0.0, shift_one_signed: bool = False,
                       grams: dict[str, np.ndarray] | None = None, per_tensor: set[str] = frozenset()) -> dict:
    """Rewrite ``source`` (a float or partly quantized ONNX file) into ``target``.
    ``ranges`` (activation name -> its per-channel range over calibration tokens) turn on
    smoothing for those activations with migration strength ``alpha`` > 0, and, with
    ``shift_one_signed``, shifted rows for the ones that are one-signed. ``grams``
    (activation name -> X^T X [K, K] over the same tokens) choose the weight codes of the
    MatMuls reading those activations by error feedback. The activations in ``per_tensor``
    take one range per tensor instead, in onnxruntime's fused kernel (``_per_tensor_matmul``)."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(source))
    del model.graph.value_info[:]
    default = next(o for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if default.version < OPSET:
        try:
            model = version_converter.convert_version(model, OPSET)
        except Exception as exc:  # onnx raises bare RuntimeError/ValueError from its C++ adapters
            raise PocketbertError(f"onnx could not move this graph to opset {OPSET}: {first_line(exc)}") from None
    rewrite = _Rewrite(model.graph, asymmetric, qmax=2 ** (weight_bits - 1) - 1, grams=grams or {},
                       per_tensor=set(per_tensor))
    smoothed = rewrite.smooth(ranges or {}, alpha, excluded) if alpha else 0
    shifted = rewrite.shift_one_signed(ranges or {}, excluded) if shift_one_signed and not asymmetric else 0
    quantized, kept = rewrite.run(excluded)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(target))
    return {"activation_scale": "per token, asymmetric" if asymmetric else "per token, symmetric",
            "weight_bits": weight_bits, "int8_matmuls": quantized, "float_matmuls": kept,
            "smoothed_activations": smoothed, **({"smoothing_alpha": alpha} if smoothed else {}),
            "shifted_activations": shifted, "error_feedback_matmuls": rewrite.error_feedback,
            "per_tensor_matmuls": rewrite.per_tensor_matmuls}


class _Rewrite:
    """One pass over a graph: weight MatMuls out, per-token integer MatMuls in."""

    def __init__(self, graph, asymmetric: bool, qmax: int, grams: dict[str, np.ndarray], per_tensor: set[str]):
        from onnx import numpy_helper

        self.graph, self.asymmetric, self.qmax, self.grams = graph, asymmetric, qmax, grams
        self.per_tensor = per_tensor  # activations read with one range per tensor
        self.error_feedback = 0  # MatMuls whose codes were chosen against their activations
        self.per_tensor_matmuls = 0
        self.absorbed: set[int] = set()  # ids of the bias Adds a fused kernel took in
        self.weights = {i.name: i for i in graph.initializer}
        self.to_array = numpy_helper.to_array
        self.from_array = numpy_helper.from_array
        self.readers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.added: list = []
        self.quantized_inputs: dict[str, _Rows] = {}  # activation -> its quantized copy
        self.smoothing: dict[str, np.ndarray] = {}  # activation -> per-channel divisor s [K]
        self.shifts: dict[str, np.ndarray] = {}  # activation -> per-channel shift c [K] (after smoothing)
        for name, value in (("pt/last_axis", np.array([-1], np.int64)), ("pt/zero", np.array(0.0, np.float32)),
                            ("pt/tiny", np.array(1e-12, np.float32)), ("pt/qmax", np.array(127.0, np.float32)),
                            ("pt/range", np.array(255.0, np.float32)), ("pt/zero_point", np.array(128, np.uint8)),
                            ("pt/no_zero_point", np.array(0, np.uint8))):
            self.constant(name, value)

    def constant(self, name: str, value: np.ndarray) -> str:
        self.added.append(self.from_array(np.asarray(value), name))
        return name

    def _readers(self, ranges: dict[str, ChannelRange], excluded: set[str]) -> dict[str, list[np.ndarray]]:
        """activation -> the float [K, N] weights of the integer MatMuls reading it."""
        readers: dict[str, list[np.ndarray]] = {}
        for node in self.graph.node:
            weight = self._weight(node)
            if weight is not None and node.name not in excluded and node.input[0] in ranges \
                    and node.input[0] not in self.per_tensor:
                readers.setdefault(node.input[0], []).append(weight)
        return readers

    def smooth(self, ranges: dict[str, ChannelRange], alpha: float, excluded: set[str]) -> int:
        """Per-channel divisors (formats/smoothquant.py) for the activations the integer
        MatMuls read: x / s row-quantized, s * W channel-quantized. A per-token scale alone
        cannot help a row whose own outlier channels (the special tokens' rows carry the
        residual stream's ~10-100x channels) set its step."""
        for activation, weights in self._readers(ranges, excluded).items():
            divisor = migration_divisors(ranges[activation].magnitude, weights, alpha)
            if divisor is not None:
                self.smoothing[activation] = divisor
        return len(self.smoothing)

    def shift_one_signed(self, ranges: dict[str, ChannelRange], excluded: set[str]) -> int:
        """Shifts c [K] for the activations that stay near or above zero (GELU outputs: their
        negative reach is a small part of their magnitude), so that x + c >= 0 takes all 255
        codes of a row. Values below the calibration's low saturate at zero."""
        for activation in self._readers(ranges, excluded):
            seen = ranges[activation]
            divisor = self.smoothing.get(activation, 1.0)  # the rows quantized are x / s
            low, magnitude = seen.low / divisor, seen.magnitude / divisor  # [K]
            reach = np.maximum(-low, 0.0)
            if reach.sum() <= ONE_SIGNED_REACH * magnitude.sum():
                self.shifts[activation] = reach.astype(np.float32)
        return len(self.shifts)

    def run(self, excluded: set[str]) -> tuple[int, list[str]]:
        nodes, quantized, kept = [], 0, []
        for node in self.graph.node:
            weight = self._weight(node)
            if id(node) in self.absorbed:
                continue
            if weight is None:
                nodes.append(node)
            elif node.name in excluded:
                nodes.append(node)
                kept.append(node.name)
            else:
                nodes += self._integer_matmul(node, weight)
                quantized += 1
        used = {name for node in nodes for name in node.input}
        initializers = [i for i in [*self.graph.initializer, *self.added] if i.name in used]
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        del self.graph.initializer[:]
        self.graph.initializer.extend(initializers)
        return quantized, kept

    def _weight(self, node) -> np.ndarray | None:
        """The float [K, N] weight of a MatMul by a constant, else None."""
        if node.op_type != "MatMul" or node.input[1] not in self.weights:
            return None
        weight = self.to_array(self.weights[node.input[1]])
        return weight if weight.ndim == 2 and weight.dtype == np.float32 else None

    def _integer_matmul(self, node, weight: np.ndarray) -> list:
        from onnx import helper

        if node.input[0] in self.per_tensor:
            return self._per_tensor_matmul(node, weight)
        name = node.name
        if node.input[0] in self.smoothing:  # the reader of x / s computes with s * W
            weight = weight * self.smoothing[node.input[0]][:, None]  # [K, N]
        codes, step = self._codes(node.input[0], weight)  # [K, N], [N]
        w, w_scale = self.constant(f"{name}/w", codes), self.constant(f"{name}/w_scale", step.astype(np.float32))
        nodes, rows = self._quantize_rows(node.input[0], weight.shape[0])
        dequantized = codes.astype(np.float64) * step  # [K, N]: what the kernel multiplies by
        bias_add = self._bias_add(node, weight.shape[1])
        # (x + c) @ W - c @ W for shifted rows, the second term a constant [N]
        correction = None if rows.shift is None else rows.shift.astype(np.float64) @ dequantized
        if bias_add is not None and not self.asymmetric:  # the bias [1, N] takes the correction
            bias = self.to_array(self.weights[bias_add.input[1]]).astype(np.float64)
            bias_add.input[1] = self.constant(f"{name}/bias", (bias - (0 if correction is None else correction))
                                              .astype(np.float32)[None, :])
            correction = None
        if correction is not None:
            return nodes + [
                helper.make_node("MatMulIntegerToFloat", [rows.q, w, rows.scale, w_scale, rows.zero_point],
                                 [f"{name}/raw"], name=name, domain="com.microsoft"),
                helper.make_node("Sub", [f"{name}/raw", self.constant(f"{name}/shift", correction.astype(np.float32))],
                                 [node.output[0]], name=f"{name}/unshift")]
        if not self.asymmetric:
            return nodes + [helper.make_node("MatMulIntegerToFloat", [rows.q, w, rows.scale, w_scale, rows.zero_point],
                                             [node.output[0]], name=name, domain="com.microsoft")]
        # (q - z) @ W = q @ W - z * colsum(W): the kernel takes one zero point, so subtract the rest
        column_sums = self.constant(f"{name}/w_sums", dequantized.sum(0).astype(np.float32))
        return nodes + [
            helper.make_node("MatMulIntegerToFloat", [rows.q, w, rows.scale, w_scale], [f"{name}/raw"], name=name,
                             domain="com.microsoft"),
            helper.make_node("Mul", [rows.zero_times_scale, column_sums], [f"{name}/shift"], name=f"{name}/shift"),
            helper.make_node("Sub", [f"{name}/raw", f"{name}/shift"], [node.output[0]], name=f"{name}/unshift"),
        ]

    def _per_tensor_matmul(self, node, weight: np.ndarray) -> list:
        """com.microsoft DynamicQuantizeMatMul: the activation quantized with one uint8 range
        inside the kernel, the bias added there too. An activation whose rows all span about
        the same range loses nothing to it, and its ~7 elementwise ops per row-scaled
        activation cost more than the product itself in a small layer (paper-size MobileBERT:
        291 row-scaled activations of [128, 128-512])."""
        from onnx import helper

        name = node.name
        codes, step = self._codes(node.input[0], weight)  # [K, N], [N]
        inputs = [node.input[0], self.constant(f"{name}/w", codes),
                  self.constant(f"{name}/w_scale", step.astype(np.float32))]
        output, bias_add = node.output[0], self._bias_add(node, weight.shape[1])
        if bias_add is not None:  # no zero point for the symmetric weights, then the bias [N]
            inputs += ["", bias_add.input[1]]
            output = bias_add.output[0]
            self.absorbed.add(id(bias_add))
        self.per_tensor_matmuls += 1
        return [helper.make_node("DynamicQuantizeMatMul", inputs, [output], name=name, domain="com.microsoft")]

    def _codes(self, x: str, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """int8 codes [K, N] of ``weight`` [K, N] on its symmetric per-output-channel grid, and
        the grid's steps [N]: by error feedback where calibration saw ``x``, else nearest."""
        step = np.abs(weight).max(axis=0) / self.qmax  # [N]
        step[step == 0] = 1.0
        gram = self.grams.get(x)
        if gram is None or gram.shape != (weight.shape[0],) * 2:
            return np.clip(np.round(weight / step), -self.qmax, self.qmax).astype(np.int8), step
        gram = smoothed_gram(gram, self.smoothing.get(x))  # the kernel reads x / s
        self.error_feedback += 1
        return round_with_error_feedback(weight, gram, step, self.qmax), step

    def _bias_add(self, node, width: int):
        """The Add that alone reads ``node``'s output, with a constant bias [N] (else None)."""
        readers = self.readers.get(node.output[0], [])
        if len(readers) != 1 or readers[0].op_type != "Add" or readers[0].input[0] != node.output[0]:
            return None
        bias = self.weights.get(readers[0].input[1])
        return readers[0] if bias is not None and list(bias.dims) == [width] else None

    def _quantize_rows(self, x: str, width: int) -> tuple[list, "_Rows"]:
        """uint8 codes of ``x`` [.., K] with one scale per row [.., 1]; once per activation."""
        from onnx import TensorProto, helper

        if x in self.quantized_inputs:
            return [], self.quantized_inputs[x]
        p = f"pt/act{len(self.quantized_inputs)}"

        def op(kind, inputs, output, **attrs):
            return helper.make_node(kind, inputs, [f"{p}/{output}"], name=f"{p}/{output}", **attrs)

        source, nodes = x, []
        if x in self.smoothing:  # x [.., K] * (1 / s) [K]: one elementwise pass before the row scales
            inverse = self.constant(f"{p}/inverse_divisor", (1.0 / self.smoothing[x]).astype(np.float32))
            nodes.append(op("Mul", [x, inverse], "smoothed"))
            x = f"{p}/smoothed"

        shift = self.shifts.get(source)
        if shift is not None:  # x + c >= 0: the row's max onto 255, zero point 0
            nodes += [op("Add", [x, self.constant(f"{p}/shift", shift)], "shifted"),
                      op("ReduceMax", [f"{p}/shifted", "pt/last_axis"], "max", keepdims=1),
                      op("Div", [f"{p}/max", "pt/range"], "step"), op("Max", [f"{p}/step", "pt/tiny"], "scale")]
            x = f"{p}/shifted"
        elif self.asymmetric:  # the row's range [min(x, 0), max(x, 0)] onto 0..255
            nodes += [op("ReduceMax", [x, "pt/last_axis"], "max", keepdims=1),
                     op("ReduceMin", [x, "pt/last_axis"], "min", keepdims=1),
                     op("Max", [f"{p}/max", "pt/zero"], "hi"), op("Min", [f"{p}/min", "pt/zero"], "lo"),
                     op("Sub", [f"{p}/hi", f"{p}/lo"], "span"), op("Div", [f"{p}/span", "pt/range"], "step"),
                     op("Max", [f"{p}/step", "pt/tiny"], "scale"),
                     op("Div", [f"{p}/lo", f"{p}/scale"], "lo_steps"), op("Neg", [f"{p}/lo_steps"], "zf0"),
                     op("Round", [f"{p}/zf0"], "zf"), op("Cast", [f"{p}/zf"], "zp", to=TensorProto.UINT8),
                     op("Mul", [f"{p}/zf", f"{p}/scale"], "zs")]
        else:  # the row's |x| max onto 127 either side of the fixed zero point 128
            fill = helper.make_tensor("value", TensorProto.UINT8, [1], [128])
            nodes += [op("Abs", [x], "abs"), op("ReduceMax", [f"{p}/abs", "pt/last_axis"], "max", keepdims=1),
                     op("Div", [f"{p}/max", "pt/qmax"], "step"), op("Max", [f"{p}/step", "pt/tiny"], "scale"),
                     op("Shape", [f"{p}/scale"], "scale_shape"),
                     op("ConstantOfShape", [f"{p}/scale_shape"], "zp", value=fill)]
        zero_points = [] if shift is not None else [f"{p}/zp"]  # shifted: uint8's default zero point 0
        nodes.append(op("QuantizeLinear", [x, f"{p}/scale", *zero_points], "q", axis=-1, block_size=width))
        zero_point = "pt/no_zero_point" if shift is not None else "pt/zero_point"
        self.quantized_inputs[source] = _Rows(f"{p}/q", f"{p}/scale", zero_point, f"{p}/zs", shift)
        return nodes, self.quantized_inputs[source]


@dataclass(frozen=True)
class _Rows:
    """An activation's quantized copy, as the MatMuls reading it take it."""
    q: str  # uint8 codes [.., K]
    scale: str  # one scale per row [.., 1]
    zero_point: str  # the kernel's one zero point (symmetric: 128, shifted: 0)
    zero_times_scale: str  # asymmetric rows: each row's zero point x scale [.., 1]
    shift: np.ndarray | None  # shifted rows: c [K]
