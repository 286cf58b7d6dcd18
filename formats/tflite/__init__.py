"""LiteRT (TFLite) through litert-torch: static shapes, int32 ids, a named signature.

Quantizer: ai-edge-quantizer on the converted file; exclusion patterns match LiteRT tensor
names, which litert-torch builds from module scopes ("<class qualname>_<attribute>/...").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pocketbert.contracts.format import ExportOptions, Format, QuantizeJob
from pocketbert.contracts.options import AcceleratorOptions, BucketedOptions
from pocketbert.contracts.recipe import Method, Recipe, RecipeParams


@dataclass(frozen=True)
class LiteRTOptions(BucketedOptions, AcceleratorOptions):
    """A signature per --seq-lens bucket; --accelerator gpu|npu: the graph that accelerator takes."""


@dataclass(frozen=True)
class LiteRTParams(RecipeParams):
    io: str = "float"  # static recipes: float32 outputs, or "int8"/"int16": the integer codes (the app dequantizes)
    # SmoothQuant's migration strength for the quantized matrix products' inputs
    # (tflite/smoothing.py), in (0, 1]; 0 leaves them as they are
    smoothing_alpha: float = 0.0
    # 16-bit recipes: the projection reading each attention's context (and the layout ops
    # before it) on 8-bit activations (tflite/mixed_activations.py)
    eight_bit_context_projections: bool = False

    @property
    def float_outputs(self) -> bool:
        return self.io == "float"


class TfliteFormat(Format):
    name = "tflite"
    runtime = "litert"
    files = {"model": "model.tflite"}
    suffixes = {".tflite": "tflite"}
    shapes = "static"  # delegates want static shapes
    input_dtype = "int32"  # LiteRT converts ids to int32
    note = ("always static (batch 1, --seq-len, or a signature per --seq-lens bucket), int32 ids, vocabulary "
            "inside the file; --accelerator gpu|npu")
    option_type = LiteRTOptions
    recipe_params = LiteRTParams
    accelerators = ("cpu", "gpu")  # cpu: the Interpreter with XNNPACK; gpu: CompiledModel's GPU accelerator
    # the float graph is already what the GPU takes (static, int32 ids, no GATHER_ND/SELECT in the
    # mask code: all four models fully delegated, measured); an NPU wants integers end to end,
    # and 16-bit activations (which NPUs take) keep a real model where 8 bits everywhere do not
    # (all-MiniLM-L6-v2, held-out text: pooled cosine mean 0.998 against 0.83)
    accelerator_recipes = {"gpu": "", "npu": "tflite-full-integer-mixed"}
    recipes = (
        Recipe("tflite-dynamic-int8", "tflite", Method.DYNAMIC, per_channel=True, calibration="minmax",
               params=LiteRTParams(error_feedback=True, smoothing_alpha=0.5),
               description="dynamic-range int8 (outlier channels moved into the weights, weights int8 rounded "
                           "against the calibration activations, activations quantized at run time)"),
        Recipe("tflite-weight-only-int8", "tflite", Method.WEIGHT_ONLY, per_channel=True, params=LiteRTParams(),
               description="int8 weights dequantized to float at load: smaller file, float compute"),
        Recipe("tflite-static-int8", "tflite", Method.STATIC, float_softmax=True, float_outliers=True, activations="int8",
               per_channel=True, calibration="minmax", params=LiteRTParams(error_feedback=True, smoothing_alpha=0.5),
               description="int8 weights; the attention output's activations calibrated, the inputs carrying "
                           "outlier channels (Q, K, V, FFN input and output) quantized per row at run time and "
                           "smoothed into the weights; mask add, softmax, residual adds, LayerNorm, GELU, batch "
                           "matmul and sentence pooling in float"),
        Recipe("tflite-full-integer-int8", "tflite", Method.STATIC, activations="int8", per_channel=True,
               calibration="minmax", params=LiteRTParams(io="int8"), description="every op int8, int8 logits out: for integer-only accelerators"),
        Recipe("tflite-full-integer-a16w8", "tflite", Method.STATIC, activations="int16", per_channel=True,
               calibration="minmax", params=LiteRTParams(io="int16", error_feedback=True),
               description="every op integer, int8 weights rounded against the calibration activations and "
                           "16-bit activations, int16 logits out: what NPUs take, keeps a real model"),
        Recipe("tflite-full-integer-mixed", "tflite", Method.STATIC, activations="int16", per_channel=True,
               calibration="minmax", params=LiteRTParams(io="int16", error_feedback=True, eight_bit_context_projections=True),
               description="tflite-full-integer-a16w8 with the projection reading each attention's context on 8-bit "
                           "activations (NPUs run them at twice the rate), the rest 16-bit where 8 bits lose a real "
                           "model: mixed a8/a16, what --accelerator npu makes"),
        Recipe("tflite-static-a16w8", "tflite", Method.STATIC, float_softmax=True, activations="int16", per_channel=True,
               calibration="minmax", params=LiteRTParams(), description="int8 weights with 16-bit activations, calibrated"),
        Recipe("tflite-float16", "tflite", Method.FLOAT16, weights="float16", params=LiteRTParams(),
               description="float16 weights (FLOAT_CASTING), float32 compute"),
    )

    def require(self) -> None:
        from pocketbert.formats.tflite.litert import interpreter_module

        interpreter_module()

    def export(self, model, spec, directory: Path, options: ExportOptions):
        from pocketbert.errors import PocketbertError
        from pocketbert.formats.tflite.export import export_tflite

        accelerator = options.own(self).accelerator
        if accelerator and options.batch != 1:
            raise PocketbertError(f"--accelerator {accelerator} exports batch 1 (accelerators take one sequence at a time)")
        return {"model": self.files["model"]}, export_tflite(model, spec, directory, integer_norms=accelerator == "npu")

    def open(self, path, input_names, output_names, threads, fixed_sequence_length):
        from pocketbert.formats.tflite.runner import TfliteRunner

        return TfliteRunner(path, threads=threads, fixed_sequence_length=fixed_sequence_length)

    def open_on(self, accelerator, path, input_names, output_names, threads, fixed_sequence_length, fallback=False):
        if accelerator != "gpu":
            return super().open_on(accelerator, path, input_names, output_names, threads, fixed_sequence_length)
        import warnings

        from pocketbert.formats.tflite.compiled import CompiledModelRunner
        from pocketbert.contracts.runner import RunnerError

        try:
            return CompiledModelRunner(path, "gpu", fixed_sequence_length=fixed_sequence_length)
        except RunnerError as exc:
            if not fallback:
                raise
            warnings.warn(f"{exc}: running on the CPU (LiteRT Interpreter, XNNPACK) instead", stacklevel=2)
            return self.open(path, input_names, output_names, threads, fixed_sequence_length)

    def quantize(self, job: QuantizeJob):
        from pocketbert.formats.tflite.quantize import quantize_tflite

        target = job.directory / job.float_file.name
        return {"model": target.name}, quantize_tflite(job.recipe, job.float_file, target, job.calibration, list(job.exclude))

    def inspect(self, path, manifest):
        from pocketbert.formats.tflite.inspect import inspect_litert

        return inspect_litert(path)

    def match(self, float_file, patterns):
        from pocketbert.formats.tflite.quantize import matching_tensors

        return matching_tensors(float_file, patterns)

    def block_pattern(self, model, module_paths):
        """A regex on LiteRT tensor names: "<class qualname>_<attribute>/..." per module
        level; a ModuleList adds no level of its own (its children are "<class>_<index>")."""
        from torch import nn

        alternatives = []
        for path in module_paths:
            module, levels = model, []
            for part in path.split("."):
                if not hasattr(module, part):
                    break  # e.g. a pooler this model does not have
                child = getattr(module, part)
                if not isinstance(child, nn.ModuleList):
                    levels.append(r"[\w.]+_" + re.escape(part))
                module = child
            else:
                alternatives.append("/".join(levels))
        return "(" + "|".join(alternatives) + ")(/|;)"


FORMAT = TfliteFormat()
