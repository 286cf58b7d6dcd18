"""ONNX for ONNX Runtime (Mobile): .onnx, .ort, and onnxruntime's fused graph.

Exporter: torch.onnx (dynamo at opset 18, the TorchScript exporter at 17); quantizer:
onnxruntime.quantization on the float file; exclusion patterns match the module paths of
the dynamo exporter's name scopes.
"""

from __future__ import annotations

from pathlib import Path

from pocketbert.contracts.format import ExportOptions, Format, QuantizeJob
from pocketbert.contracts.recipe import Recipe


class OnnxFormat(Format):
    name = "onnx"
    runtime = "onnxruntime"
    files = {"model": "model.onnx", "optimized": "model.optimized.onnx", "ort": "model.ort"}
    suffixes = {".onnx": "onnx", ".ort": "ort"}
    options = ("opset", "ort", "optimize")
    note = "dynamic batch and sequence unless --static; --ort, --optimize, --opset"
    recipes = (
        # one activation scale per token (per_token.py) and per-channel 7-bit weights: full-range
        # int8 overflows the 16-bit intermediates of onnxruntime's x86 kernels without VNNI
        Recipe("onnx-dynamic-int8", "onnx", "dynamic", per_channel=True, reduce_range=True,
               activation_scale="per-token",
               description="every MatMul int8: per-channel 7-bit weights, one run-time scale per token"),
        Recipe("onnx-dynamic-int8-asymmetric", "onnx", "dynamic", per_channel=True, reduce_range=True,
               activation_scale="per-token-asymmetric",
               description="as onnx-dynamic-int8 with a zero point per token: closer to fp32, a little slower"),
        Recipe("onnx-dynamic-int8-per-tensor", "onnx", "dynamic",
               description="one int8 scale per weight, every MatMul: smallest and fastest, loses real-text quality"),
        Recipe("onnx-dynamic-int8-per-channel", "onnx", "dynamic", per_channel=True,
               description="one int8 scale per output channel, every MatMul"),
        # static: uint8 activations with 7-bit weights (u8 x s8, no overflow without VNNI)
        Recipe("onnx-static-int8-minmax", "onnx", "static", float_softmax=True, float_outliers=True,
               activations="uint8", per_channel=True, reduce_range=True, calibration="minmax",
               description="QDQ int8 of the attention projections (FFN, adds, LayerNorm in float), min/max ranges"),
        Recipe("onnx-static-int8-entropy", "onnx", "static", float_softmax=True, activations="uint8", per_channel=True,
               reduce_range=True, calibration="entropy", description="QDQ int8, activation ranges minimising KL divergence"),
        Recipe("onnx-static-int8-percentile", "onnx", "static", float_softmax=True, activations="uint8",
               per_channel=True, reduce_range=True, calibration="percentile",
               description="QDQ int8, activation ranges at the 99.999th percentile"),
    )

    def export(self, model, spec, directory: Path, options: ExportOptions):
        from pocketbert.formats.onnx import export as onnx_export

        details = onnx_export.export_onnx(model, spec, directory, options.opset)
        files = {"model": self.files["model"]}
        if options.optimize:
            details["optimizer"] = onnx_export.optimize(model, directory)
            files["optimized"] = self.files["optimized"]
        if options.ort:
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

    def calibration_limit(self, recipe: Recipe) -> int:
        """onnxruntime's entropy and percentile calibrators keep every activation of every
        example in memory (the 30522-wide MLM logits alone: 15 MB per example at seq 128)."""
        return 16 if recipe.calibration in ("entropy", "percentile") else super().calibration_limit(recipe)


FORMAT = OnnxFormat()
