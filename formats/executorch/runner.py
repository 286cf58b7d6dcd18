"""A .pte program on ExecuTorch's runtime behind the Runner interface."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pocketbert.errors import first_line
from pocketbert.quiet import captured_stderr
from pocketbert.runtime.foreign import numbered_outputs, positional_names
from pocketbert.runtime.runner import RunnerError


class ExecutorchRunner:
    """A .pte program on ExecuTorch's runtime (its Python bindings wrap the same C++ runtime
    and XNNPACK delegate an app links). A .pte keeps no input/output names: they come from
    the artifact's manifest, as for TorchScript.

    ``threads`` sizes ExecuTorch's threadpool, which XNNPACK uses and which is one per
    process. XNNPACK keeps a pointer to it when a program loads, so resizing it under a
    loaded program frees what that program uses (a crash, measured): the pool is resized
    only while no program is open, and asking for another size then is a RunnerError.
    ``threads=None`` keeps the pool as it is (the runtime's default: one thread per core)."""

    _open: "weakref.WeakSet[ExecutorchRunner]" = weakref.WeakSet()  # programs loaded in this process

    def __init__(self, path: str | Path, input_names: Sequence[str], output_names: Sequence[str],
                 threads: int | None = None, fixed_sequence_length: int | None = None):
        from pocketbert.formats.executorch.export import runtime
        executorch, bindings = runtime()
        self._set_threads(bindings, threads)
        with captured_stderr() as log:  # the runtime logs why a load failed on fd 2
            try:
                self.method = executorch.load_program(Path(path)).load_method("forward")
            except Exception as exc:
                reasons = [line.split("] ", 1)[-1] for line in log if line.startswith("[")]
                detail = "; ".join([*reasons[-1:], first_line(exc)])
                raise RunnerError(f"{path}: ExecuTorch cannot load it ({detail})") from None
        meta = self.method.metadata
        self.shapes = [tuple(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
        # a foreign .pte: inputs by position, outputs numbered
        self.input_names = tuple(input_names) or positional_names(len(self.shapes), str(path))
        self.output_names = tuple(output_names) or numbered_outputs(meta.num_outputs())
        if len(self.input_names) != len(self.shapes):
            raise RunnerError(f"{path}: the program takes {len(self.shapes)} inputs, the manifest names {len(self.input_names)}")
        self.threads = bindings._threadpool_get_thread_count()
        # a foreign .pte keeps only upper bounds: it is measured at its longest
        self.fixed_sequence_length = fixed_sequence_length or (None if input_names else self.shapes[0][-1])
        ExecutorchRunner._open.add(self)

    @classmethod
    def _set_threads(cls, bindings, threads: int | None) -> None:
        if threads is None or threads == bindings._threadpool_get_thread_count():
            return
        if threads < 1:
            raise RunnerError(f"threads must be >= 1, got {threads}")
        if len(cls._open):
            raise RunnerError(
                f"ExecuTorch's threadpool ({bindings._threadpool_get_thread_count()} threads) is shared by the "
                f"{len(cls._open)} program(s) still open in this process; close them before asking for {threads}"
            )
        with captured_stderr():  # "Resetting threadpool to N threads."
            bindings._unsafe_reset_threadpool(threads)

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = []
        for name, limit in zip(self.input_names, self.shapes):
            value = np.ascontiguousarray(inputs[name], dtype=np.int64)
            if self.fixed_sequence_length is not None and value.shape != limit:
                raise RunnerError(f"input {name} has shape {value.shape}; this .pte takes exactly {limit}")
            if len(value.shape) != len(limit) or any(n > m for n, m in zip(value.shape, limit)):
                raise RunnerError(f"input {name} has shape {value.shape}; this .pte takes at most {limit}")
            args.append(torch.from_numpy(value))
        try:
            outputs = self.method.execute(args)
        except RuntimeError as exc:  # the reason is in the runtime's log lines on stderr
            raise RunnerError(f"ExecuTorch failed to run the program ({first_line(exc)})") from None
        return {name: value.float().numpy() for name, value in zip(self.output_names, outputs)}
