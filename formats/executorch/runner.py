"""A .pte program on ExecuTorch's runtime behind the Runner interface."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pocketbert.errors import first_line
from pocketbert.quiet import captured_stderr
from pocketbert.contracts import buckets
from pocketbert.contracts.foreign import numbered_outputs, positional_names
from pocketbert.contracts.runner import RunnerError


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
                program = executorch.load_program(Path(path))
                # a bucketed file: a method per length (seq_16 ...), picked per input
                self.sequence_buckets = buckets.bucket_lengths(program.method_names)
                names = [buckets.bucket_signature(n) for n in self.sequence_buckets] or ["forward"]
                self.methods = {name: program.load_method(name) for name in names}
            except Exception as exc:
                reasons = [line.split("] ", 1)[-1] for line in log if line.startswith("[")]
                detail = "; ".join([*reasons[-1:], first_line(exc)])
                raise RunnerError(f"{path}: ExecuTorch cannot load it ({detail})") from None
        self.method = self.methods[names[-1]]
        meta = self.method.metadata
        self.shapes = [tuple(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
        by_position = buckets.sequence_axes(*(_output_shapes(self.methods[n]) for n in (names[0], names[-1])))
        # a foreign .pte: inputs by position, outputs numbered
        self.input_names = tuple(input_names) or positional_names(len(self.shapes), str(path))
        self.output_names = tuple(output_names) or numbered_outputs(meta.num_outputs())
        self.output_axes = {self.output_names[int(i)]: axis for i, axis in by_position.items()}
        if len(self.input_names) != len(self.shapes):
            raise RunnerError(f"{path}: the program takes {len(self.shapes)} inputs, the manifest names {len(self.input_names)}")
        self.threads = bindings._threadpool_get_thread_count()
        # a foreign .pte keeps only upper bounds: it is measured at its longest; bucketed: any
        # length up to the longest bucket
        self.fixed_sequence_length = None if self.sequence_buckets else (
            fixed_sequence_length or (None if input_names else self.shapes[0][-1]))
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
        method, length, bucket, shapes = self.method, None, None, self.shapes
        if self.sequence_buckets:
            length = np.shape(inputs[self.input_names[0]])[-1]
            bucket = buckets.pick(self.sequence_buckets, length, "this .pte")
            method = self.methods[buckets.bucket_signature(bucket)]
            shapes = [(*shape[:-1], bucket) for shape in self.shapes]
        args = []
        for name, limit in zip(self.input_names, shapes):
            value = np.ascontiguousarray(inputs[name], dtype=np.int64)
            if bucket is not None:
                value = buckets.padded(value, bucket)
            if self.fixed_sequence_length is not None and value.shape != limit:
                raise RunnerError(f"input {name} has shape {value.shape}; this .pte takes exactly {limit}")
            if len(value.shape) != len(limit) or any(n > m for n, m in zip(value.shape, limit)):
                raise RunnerError(f"input {name} has shape {value.shape}; this .pte takes at most {limit}")
            args.append(torch.from_numpy(value))
        try:
            outputs = method.execute(args)
        except RuntimeError as exc:  # the reason is in the runtime's log lines on stderr
            raise RunnerError(f"ExecuTorch failed to run the program ({first_line(exc)})") from None
        result = {name: value.float().numpy() for name, value in zip(self.output_names, outputs)}
        if bucket is not None:
            result = {name: buckets.trimmed(value, self.output_axes.get(name), length) for name, value in result.items()}
        return result


def _output_shapes(method) -> dict[str, dict]:
    """A method's outputs by position, as ``buckets.sequence_axes`` reads them."""
    meta = method.metadata
    return {str(i): {"shape": tuple(meta.output_tensor_meta(i).sizes())} for i in range(meta.num_outputs())}
