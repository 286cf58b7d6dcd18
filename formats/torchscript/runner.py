"""TorchScript (.pt) and PyTorch Mobile lite (.ptl) behind the Runner interface."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pocketbert.errors import first_line
from pocketbert.contracts.foreign import outputs_named
from pocketbert.contracts.runner import RunnerError


class TorchScriptRunner:
    """A traced TorchScript module (.pt) or its lite-interpreter form (.ptl, PyTorch Mobile).

    TorchScript keeps no input/output names: they come from the artifact's manifest."""

    def __init__(self, path: str | Path, input_names: Sequence[str], output_names: Sequence[str],
                 threads: int | None = None, fixed_sequence_length: int | None = None):
        try:
            if str(path).endswith(".ptl"):
                from torch.jit.mobile import _load_for_lite_interpreter

                self.module = _load_for_lite_interpreter(str(path))
            else:
                self.module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise RunnerError(f"{path}: PyTorch cannot load it as TorchScript ({first_line(exc)})") from None
        self.input_names = tuple(input_names) or self._names_in_file(path)
        self.output_names = tuple(output_names)  # () for a foreign file: output_0, output_1 ...
        self.threads = threads
        self.fixed_sequence_length = fixed_sequence_length

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        args = [torch.as_tensor(np.asarray(inputs[name], dtype=np.int64)) for name in self.input_names]
        with torch.inference_mode():
            outputs = self.module(*args)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        elif isinstance(outputs, dict):
            outputs = tuple(outputs.values())
        return {name: value.float().numpy() for name, value in outputs_named(outputs, self.output_names).items()}

    def _names_in_file(self, path) -> tuple[str, ...]:
        """A foreign TorchScript file: its forward's argument names (a traced module keeps
        the Python signature's; a lite module keeps none)."""
        try:
            arguments = [a.name for a in self.module.forward.schema.arguments[1:]]
        except AttributeError:
            raise RunnerError(f"{path}: a PyTorch Mobile lite module keeps no input names; bench it inside its "
                              "export (manifest.json) or as the .pt") from None
        return tuple(arguments)
