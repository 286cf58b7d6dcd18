"""One interface over every way of running a model: ``runner(inputs) -> outputs``.

Inputs and outputs are dicts of numpy arrays named as the model names them
(input_ids, attention_mask, token_type_ids -> logits, start_logits ...). Pipelines, the
parity checks and the latency harness are written against this, so an exported file
plugs in wherever the PyTorch model does. Each runner converts dtypes itself (int64 ids
for PyTorch; exported graphs may want int32). The runner of each file format lives with
its format plugin (``pocketbert.formats.<name>.runner``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from pocketbert.errors import PocketbertError
from pocketbert.models.modeling import PreTrainedModel


class Runner(Protocol):
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    # a graph exported with static shapes takes exactly this many tokens; None = any
    fixed_sequence_length: int | None
    # a bucketed .tflite: the static lengths it pads a sequence to (batch 1); () = none
    sequence_buckets: tuple[int, ...] = ()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class RunnerError(PocketbertError):
    """A model file that cannot be loaded or run."""


class TorchRunner:
    """The PyTorch reference model behind the Runner interface."""

    fixed_sequence_length = None

    def __init__(self, model: PreTrainedModel, threads: int | None = None):
        self.model = model.eval()
        self.threads = threads
        self.input_names = tuple(model.input_names)
        self.output_names = tuple(model.output_names)

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        kwargs = {
            name: torch.as_tensor(np.asarray(inputs[name], dtype=np.int64))
            for name in self.input_names
            if name in inputs
        }
        with torch.inference_mode():
            outputs = self.model(**kwargs)
        return {name: outputs[name].float().numpy() for name in self.output_names}
