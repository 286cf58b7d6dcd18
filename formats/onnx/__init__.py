"""ONNX for ONNX Runtime (Mobile): .onnx, .ort, and onnxruntime's fused graph.

Exporter: torch.onnx (dynamo at opset 18, the TorchScript exporter at 17); quantizer:
onnxruntime.quantization on the float file; exclusion patterns match the module paths of
the dynamo exporter's name scopes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pocketbert.contracts.format import ExportOptions, Format, QuantizeJob
from pocketbert.contracts.options import Flag, FormatOptions, number
from pocketbert.contracts.recipe import Method, Recipe, RecipeParams


def opset_number(text: str) -> int:
    """ONNX opsets the exporters write and onnxruntime runs (no silent fallback to 18)."""
    value = number(text, int)
    if not 17 <= value <= 21:
        raise argparse.ArgumentTypeError(f"opset {value} is not supported (17 to 21)")
    return value


@dataclass(frozen=True)
class OnnxOptions(FormatOptions):
    opset: int = 18
    ort: bool = False  # also write .ort for ONNX Runtime Mobile
    optimize: bool = False  # also write onnxruntime's transformer-optimized graph

    FLAGS: ClassVar[tuple[Flag, ...]] = (
        Flag("opset", "ONNX opset (17 to 21; default 18)", {"type": opset_number}),
        Flag("ort", "also write model.ort for ONNX Runtime Mobile", {"action": "store_true"}),
        Flag("optimize", "also write onnxruntime's fused transformer graph", {"action": "store_true"}),
    )


@dataclass(frozen=True)
class OnnxRecipeParams(RecipeParams):
    # 7-bit weights: onnxruntime's x86 u8 x s8 kernels without VNNI add pairs of products in
    # 16 bits, which full-range int8 weights overflow (up to 23% off in a layer, measured)
    reduce_range: bool = False
    # one run-time activation scale per tensor (onnxruntime.quantization) or per token
    # ("per-token", symmetric; "per-token-asymmetric": a zero point per token too); static
    # recipes with per-token rows calibrate only the attention output projections
    activation_scale: str = "per-tensor"
    # per-token recipes: divide activations by per-channel factors folded into the weights
    # (per_token.py), strength alpha in (0, 1]; 0 leaves them as they are
    smoothing_alpha: float = 0.0
    # symmetric per-token recipes: one-signed activations (GELU outputs) as shifted rows with
    # all 255 codes (per_token.py), from the calibration's per-channel lows
    shift_one_signed: bool = False
    # per-token recipes: the activations one range per tensor keeps at this signal-to-noise
    # (dB) or better on the calibration text take it, in onnxruntime's fused
    # DynamicQuantizeMatMul (per_token.py), instead of per-token rows; 0: every one per token
    per_tensor_above_db: float = 0.0

    @property
    def per_token(self) -> bool:
        return self.activation_scale.startswith("per-token")

    @property
    def asymmetric(self) -> bool:
        """A zero point per token beside its scale."""
        return self.activation_scale == "per-token-asymmetric"


# the dynamic default's run-time rows (per token, smoothed, shifted, fitted), also the static
# recipes' for the products whose inputs carry outlier channels. One range per tensor where it
# keeps 40 dB: the real all-MiniLM-L6-v2's activations reach 20-37.5 dB with one range (its
# attention contexts at 36.6-37.5 lost recall@10 0.950 -> 0.941 on tuning text per tensor),
# a paper-size random MobileBERT's 40.5-45 (its 291 row-scaled activations cost 1.6x the
# latency of Optimum's per-tensor file)
PER_TOKEN_ROWS = OnnxRecipeParams(reduce_range=True, activation_scale="per-token", smoothing_alpha=0.5,
                                  shift_one_signed=True, error_feedback=True, per_tensor_above_db=40.0)


class OnnxFormat(Format):
    name = "onnx"
    runtime = "onnxruntime"
    files = {"model": "model.onnx", "optimized": "model.optimized.onnx", "ort": "model.ort"}
    suffixes = {".onnx": "onnx", ".ort": "ort"}
    option_type = OnnxOptions
    recipe_params = OnnxRecipeParams
    note = "dynamic batch and sequence unless --static; --ort, --optimize, --opset"
    recipes = (
        # one activation scale per token (per_token.py) and per-channel 7-bit weights: full-range
        # int8 overflows the 16-bit intermediates of onnxruntime's x86 kernels without VNNI
        # smoothing (per_token.py) divides the outlier channels down by factors from the
        # calibration text: on the real MiniLM (held-out short texts, seq 128) pooled cosine
        # min 0.959 -> 0.980 at +0.7% latency; with a zero point per token 0.988 at +8-11%;
        # shifting the one-signed GELU outputs instead (all 255 codes, no per-row work) 0.986
        Recipe("onnx-dynamic-int8", "onnx", Method.DYNAMIC, per_channel=True, calibration="minmax",
               params=PER_TOKEN_ROWS,
               description="every MatMul int8: per-channel 7-bit weights rounded against the calibration "
                           "activations, one run-time scale per token, outlier channels smoothed into the "
                           "weights, GELU outputs on all 255 codes"),
        Recipe("onnx-dynamic-int8-asymmetric", "onnx", Method.DYNAMIC, per_channel=True, calibration="minmax",
               params=OnnxRecipeParams(reduce_range=True, activation_scale="per-token-asymmetric", smoothing_alpha=0.5,
                                       error_feedback=True),
               description="as onnx-dynamic-int8 with a zero point per token: closest to fp32 on short texts, ~10% slower"),
        Recipe("onnx-dynamic-int8-per-tensor", "onnx", Method.DYNAMIC, params=OnnxRecipeParams(),
               description="one int8 scale per weight, every MatMul: smallest and fastest, loses real-text quality"),
        Recipe("onnx-dynamic-int8-per-channel", "onnx", Method.DYNAMIC, per_channel=True, params=OnnxRecipeParams(),
               description="one int8 scale per output channel, every MatMul"),
        # static: uint8 activations with 7-bit weights (u8 x s8, no overflow without VNNI)
        # static with per-token rows where the outlier channels are (quantize._rows_at_run_time):
        # a calibrated range on Q, K, V lost the MobileBERT form's short texts (real MiniLM,
        # held-out, pooled cosine min 0.979) and left the FFN float
        Recipe("onnx-static-int8-minmax", "onnx", Method.STATIC, float_softmax=True, activations="uint8",
               per_channel=True, calibration="minmax",
               params=PER_TOKEN_ROWS,
               description="int8 weights; each attention output projection reads a calibrated min/max range (QDQ), "
                           "the products whose inputs carry outlier channels (Q, K, V, FFN input and output) one "
                           "scale per token at run time, smoothed as in onnx-dynamic-int8; softmax, attention "
                           "products, adds, LayerNorm and GELU in float"),
        # the same layout, the attention outputs' ranges by other calibrators (every op QDQ
        # with these ranges: held-out pooled cosine mean 0.836 and 0.827, refused)
        Recipe("onnx-static-int8-entropy", "onnx", Method.STATIC, float_softmax=True, activations="uint8",
               per_channel=True, calibration="entropy", params=PER_TOKEN_ROWS,
               description="as onnx-static-int8-minmax, the attention outputs' ranges minimising KL divergence"),
        Recipe("onnx-static-int8-percentile", "onnx", Method.STATIC, float_softmax=True, activations="uint8",
               per_channel=True, calibration="percentile", params=PER_TOKEN_ROWS,
               description="as onnx-static-int8-minmax, the attention outputs' ranges at the 99.999th percentile"),
        # what onnxruntime's QNN execution provider (Qualcomm HTP) takes: 8 bits everywhere
        # breaks a real BERT (LayerNorm statistics, residual stream, pooling), 16-bit
        # activations keep it; onnxruntime on a CPU runs the file's rounding exactly (each
        # op between its DequantizeLinear and QuantizeLinear), which is how it is measured here
        Recipe("onnx-static-a16w8", "onnx", Method.STATIC, weights="uint8", activations="uint16", calibration="minmax",
               params=OnnxRecipeParams(),
               description="QDQ for NPUs (onnxruntime's QNN execution provider): every op quantized, activations "
                           "uint16, weights uint8"),
    )

    def export(self, model, spec, directory: Path, options: ExportOptions):
        from pocketbert.formats.onnx import export as onnx_export

        own = options.own(self)
        details = onnx_export.export_onnx(model, spec, directory, own.opset)
        files = {"model": self.files["model"]}
        if own.optimize:
            details["optimizer"] = onnx_export.optimize(model, directory)
            files["optimized"] = self.files["optimized"]
        if own.ort:
            files["ort"] = onnx_export.convert_to_ort(directory).name
        return files, details

    def open(self, path, input_names, output_names, threads, fixed_sequence_length):
        from pocketbert.formats.onnx.runner import OnnxRunner

        return OnnxRunner(path, threads=threads, fixed_sequence_length=fixed_sequence_length)

    def quantize(self, job: QuantizeJob):
        from pocketbert.formats.onnx.quantize import quantize_onnx

        target = job.directory / job.float_file.name
        details = quantize_onnx(job.recipe, job.float_file, target, job.calibration, job.excluded_nodes)
        return {"model": target.name}, details

    def inspect(self, path, manifest):
        from pocketbert.formats.onnx.inspect import inspect_onnx, inspect_ort

        return inspect_ort(path, manifest) if Path(path).suffix == ".ort" else inspect_onnx(path)

    def match(self, float_file, patterns):
        from pocketbert.formats.onnx.graph import matching_nodes

        return matching_nodes(float_file, patterns)


FORMAT = OnnxFormat()
