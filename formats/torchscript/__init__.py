"""TorchScript for PyTorch Mobile: a traced .pt and its lite-interpreter .ptl.

Quantizer: torch.ao dynamic int8 of nn.Linear on the PyTorch model, then traced; exclusion
patterns match module paths as in the state dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pocketbert.contracts.format import ExportOptions, Format, QuantizeJob
from pocketbert.contracts.recipe import Method, Recipe, RecipeParams


@dataclass(frozen=True)
class TorchScriptParams(RecipeParams):
    engine: str = "x86"  # the quantized engine the weights are packed for: qnnpack (ARM phones) | x86


class TorchScriptFormat(Format):
    name = "torchscript"
    runtime = "torch"
    files = {"model": "model.pt", "lite": "model.ptl"}
    suffixes = {".pt": "torchscript", ".ptl": "torchscript-lite"}
    quantizes = "model"
    recipe_params = TorchScriptParams
    bench_role = "lite"  # the lite-interpreter file PyTorch Mobile loads
    note = "traced .pt and lite-interpreter .ptl (PyTorch Mobile)"
    deprecated = ("PyTorch Mobile (TorchScript .pt/.ptl) is no longer developed: PyTorch points new apps to "
                  "ExecuTorch (--format executorch), which also reaches Vulkan GPUs and NPUs")
    recipes = (
        Recipe("torchscript-dynamic-int8-qnnpack", "torchscript", Method.DYNAMIC, params=TorchScriptParams("qnnpack"),
               per_channel=True,
               float_outliers=True,
               description="per-channel int8 Linear weights packed for QNNPACK (ARM phones); FFN outputs float"),
        Recipe("torchscript-dynamic-int8-x86", "torchscript", Method.DYNAMIC, params=TorchScriptParams("x86"),
               per_channel=True,
               float_outliers=True,
               description="per-channel int8 Linear weights packed for x86 (FBGEMM/oneDNN), FFN outputs float"),
    )

    def export(self, model, spec, directory: Path, options: ExportOptions):
        from pocketbert.formats.torchscript.export import export_torchscript

        return {"model": self.files["model"], "lite": self.files["lite"]}, export_torchscript(model, spec, directory)

    def open(self, path, input_names, output_names, threads, fixed_sequence_length):
        from pocketbert.formats.torchscript.runner import TorchScriptRunner

        return TorchScriptRunner(path, input_names, output_names, threads=threads,
                                 fixed_sequence_length=fixed_sequence_length)

    def quantize(self, job: QuantizeJob):
        from pocketbert.formats.torchscript.quantize import quantize_linears

        quantized = quantize_linears(job.recipe, job.model, list(job.exclude))
        return self.export(quantized, job.spec, job.directory, job.options)


    def inspect(self, path, manifest):
        """PyTorch Mobile runs TorchScript on its CPU kernels; its NNAPI and Vulkan paths
        needed separate preparation (and NNAPI itself is deprecated), so there is nothing to
        check: the facts and the deprecation."""
        from pocketbert.contracts.accelerator import FileInspection

        inputs, outputs = ([[row.to_dict() for row in rows] for rows in (manifest.inputs, manifest.outputs)]
                           if manifest is not None else ([], []))
        return FileInspection(str(path), self.kind_of(path), Path(path).stat().st_size, inputs, outputs,
                              notes=[self.deprecated])


FORMAT = TorchScriptFormat()
