"""ExecuTorch (.pte) with the XNNPACK delegate, PyTorch's successor of PyTorch Mobile.

An optional extra: nothing imports executorch until a file is exported, run or quantized.
Quantizer: PT2E with the XNNPACK quantizer on the PyTorch model; exclusion patterns match
module paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pocketbert.contracts.format import ExportOptions, Format, QuantizeJob
from pocketbert.contracts.options import BucketedOptions
from pocketbert.contracts.recipe import Method, Recipe, RecipeParams


@dataclass(frozen=True)
class ExecutorchOptions(BucketedOptions):
    """A method per --seq-lens bucket."""


@dataclass(frozen=True)
class ExecutorchParams(RecipeParams):
    # SmoothQuant's migration strength for the inputs of the layers XNNPACK quantizes at run
    # time (formats/smoothed_layers.py), in (0, 1]; 0 leaves them as they are
    smoothing_alpha: float = 0.0


class ExecutorchFormat(Format):
    name = "executorch"
    runtime = "executorch"
    files = {"model": "model.pte"}
    suffixes = {".pte": "executorch"}
    # XNNPACK takes no symbolic reshapes and memory is planned for the largest input
    shapes = "static-by-default"
    quantizes = "model"
    note = "static unless --dynamic (batch 1-8, any length), or a method per --seq-lens bucket; optional extra"
    option_type = ExecutorchOptions
    recipe_params = ExecutorchParams
    recipes = (
        Recipe("executorch-dynamic-int8", "executorch", Method.DYNAMIC, per_channel=True, float_outliers=True,
               calibration="minmax", params=ExecutorchParams(error_feedback=True, smoothing_alpha=0.5),
               description="int8 per-channel Linear/Conv weights rounded against the calibration activations, "
                           "outlier channels smoothed into them, activations at run time (XNNPACK); FFN outputs "
                           "float"),
        Recipe("executorch-static-int8", "executorch", Method.STATIC, float_softmax=True, float_outliers=True,
               activations="int8", per_channel=True, calibration="minmax", params=ExecutorchParams(),
               description="int8 weights; activations calibrated, but for the inputs read from a LayerNorm (Q, K, V, "
                           "FFN input), quantized per row at run time; mask add, softmax and the ops carrying outlier "
                           "channels (FFN outputs, residual adds into LayerNorm, sentence pooling) in float"),
    )

    def require(self) -> None:
        from pocketbert.formats.executorch.export import require

        require()

    def export(self, model, spec, directory: Path, options: ExportOptions):
        from pocketbert.formats.executorch.export import export_executorch

        return {"model": self.files["model"]}, export_executorch(model, spec, directory)

    def open(self, path, input_names, output_names, threads, fixed_sequence_length):
        from pocketbert.formats.executorch.runner import ExecutorchRunner

        return ExecutorchRunner(path, input_names, output_names, threads=threads,
                                fixed_sequence_length=fixed_sequence_length)

    def quantize(self, job: QuantizeJob):
        from pocketbert.formats.executorch.quantize import quantize_executorch

        details = quantize_executorch(job.recipe, job.model, job.spec, job.directory, job.calibration, list(job.exclude))
        return {"model": self.files["model"]}, details


    def inspect(self, path, manifest):
        from pocketbert.formats.executorch.inspect import inspect_pte

        return inspect_pte(path, manifest)


FORMAT = ExecutorchFormat()
