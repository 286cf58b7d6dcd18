"""Dynamic int8 of nn.Linear for PyTorch Mobile, traced to TorchScript.

torch.ao.quantization is deprecated in favour of torchao, but torchao's quantized tensors
do not trace to TorchScript (the format PyTorch Mobile loads); torch.ao's dynamic
quantization does, so it is used here. The engine (QNNPACK for ARM phones, x86 to measure
here) decides how weights are packed; the traced file runs only where that engine exists.
"""

from __future__ import annotations

import re
import warnings

import torch
from torch import nn

from pocketbert.models.modeling import PreTrainedModel
from pocketbert.contracts.recipe import Recipe


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def quantize_linears(recipe: Recipe, model: PreTrainedModel, exclude: list[str]) -> PreTrainedModel:
    """A dynamically quantized copy of ``model`` (Linear layers not matched by ``exclude``)."""
    import copy

    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    from pocketbert.models.registry import ffn_output_linears

    # modules whose weights forward reads directly (MobileBERT's MLM decoder) stay float
    float_only = {
        f"{name}.{child}" if name else child
        for name, module in model.named_modules()
        for child in getattr(module, "float_only_children", ())
    }
    if recipe.float_outliers:
        float_only |= set(ffn_output_linears(model))
    qconfig = per_channel_dynamic_qconfig if recipe.per_channel else default_dynamic_qconfig
    chosen = {name: qconfig for name in linear_names(model)
              if name not in float_only and not any(re.search(p, name) for p in exclude)}
    torch.backends.quantized.engine = recipe.params.engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        return quantize_dynamic(copy.deepcopy(model).eval(), chosen, dtype=torch.qint8)
