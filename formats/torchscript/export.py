"""PyTorch -> TorchScript for PyTorch Mobile: a traced ``.pt`` and a lite-interpreter ``.ptl``.

TorchScript is deprecated in torch 2.x but is what PyTorch Mobile loads. ``optimize_for_mobile``
needs a torch built with XNNPACK; the CPU wheel used here has none (it raises), so it is
applied when it works and the manifest says why when it does not.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from pocketbert.errors import PocketbertError, first_line
from pocketbert.contracts.spec import ExportSpec, TupleOutputs, example_args
from pocketbert.models.modeling import PreTrainedModel

MODEL_FILE = "model.pt"
LITE_FILE = "model.ptl"


def export_torchscript(model: PreTrainedModel, spec: ExportSpec, directory: Path) -> dict:
    args = example_args(spec, model.config.vocab_size)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(TupleOutputs(model).eval(), args, check_trace=False)
    except Exception as exc:
        raise PocketbertError(f"TorchScript trace failed: {type(exc).__name__}: {exc}") from None
    traced.save(str(directory / MODEL_FILE))
    mobile = traced
    try:
        from torch.utils.mobile_optimizer import optimize_for_mobile

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mobile = optimize_for_mobile(traced)
        optimized = {"applied": True}
    except Exception as exc:  # this CPU build of torch has no XNNPACK
        reason = first_line(exc)
        optimized = {"applied": False, "reason": reason[:300]}
    mobile._save_for_lite_interpreter(str(directory / LITE_FILE))
    return {"optimize_for_mobile": optimized, "traced_at_input_shape": list(args[0].shape)}
