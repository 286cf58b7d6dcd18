"""A .tflite on LiteRT 2's CompiledModel API, the one that reaches the GPU and NPU.

The Interpreter (runner.py) stays the reference path: it is what the paper protocols time
and what every LiteRT release runs. CompiledModel places the whole graph on an accelerator
chosen at load (CPU, GPU, NPU) and says whether it took all of it
(``is_fully_accelerated``). Its GPU accelerator in the ai-edge-litert wheel is a WebGPU
build (Dawn): on a machine without a GPU it runs on any Vulkan device, Mesa's lavapipe
included, which is how the GPU path's numerics (fp16 by default) are measured here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketbert.errors import first_line
from pocketbert.quiet import captured_stderr
from pocketbert.formats.tflite.runner import dequantized, integer_output_quantization
from pocketbert.contracts.runner import RunnerError

ACCELERATORS = ("cpu", "gpu")


def _reason(lines: list[str], exc: BaseException) -> str:
    """The runtime's own words for a failed load: LiteRT's first ERROR with a message and the
    Vulkan loader's or Dawn's last warning (the exception itself only names source lines)."""
    errors = [line.split("] ", 1)[1].strip() for line in lines if line.startswith("ERROR") and "] " in line]
    warned = [line.removeprefix("Warning: ").strip() for line in lines if line.startswith("Warning: ")]
    picked = [e for e in errors if e][:1] + warned[-1:]
    return "; ".join(dict.fromkeys(picked)) or first_line(exc)


class CompiledModelRunner:
    """The Runner interface over ``ai_edge_litert.compiled_model.CompiledModel``.

    ``accelerator="gpu"`` computes in fp16 unless ``enforce_f32``. A failed load (no GPU
    device, an op the accelerator lacks) is a RunnerError carrying the runtime's reason;
    callers that want a fallback catch it and open the Interpreter."""

    def __init__(self, path: str | Path, accelerator: str = "cpu", threads: int | None = None,
                 enforce_f32: bool = False, fixed_sequence_length: int | None = None):
        if accelerator not in ACCELERATORS:
            raise RunnerError(f"unknown LiteRT accelerator {accelerator!r} (known: {', '.join(ACCELERATORS)})")
        self.accelerator = accelerator
        with captured_stderr() as lines:  # the environment logs its accelerators on fd 2
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.hardware_accelerator import HardwareAccelerator
            from ai_edge_litert.options import CpuOptions, GpuOptions, Options

            settings = {"gpu_options": GpuOptions(enforce_f32=enforce_f32)} if accelerator == "gpu" else (
                {} if threads is None else {"cpu_options": CpuOptions(num_threads=threads)})
            try:
                options = Options(hardware_accelerators=HardwareAccelerator[accelerator.upper()], **settings)
                self.model = CompiledModel.from_file(str(path), options=options)
                self.signature = next(iter(self.model.get_signature_list()))
                inputs = self.model.get_input_tensor_details(self.signature)
                self.outputs = self.model.get_output_tensor_details(self.signature)
                self.input_buffers = {n: self.model.create_input_buffer_by_name(self.signature, n) for n in inputs}
                self.output_buffers = {n: self.model.create_output_buffer_by_name(self.signature, n) for n in self.outputs}
            except Exception as exc:  # its reason is on fd 2, readable once the capture ends
                failure = exc
            else:
                failure = None
        if failure is not None:
            raise RunnerError(f"{path}: LiteRT CompiledModel cannot load it on the {accelerator.upper()} "
                              f"({_reason(lines, failure)})") from None
        self.log = lines  # the accelerator's own account (adapter chosen, delegation)
        self.input_names = tuple(inputs)
        self.output_names = tuple(self.outputs)
        self.shapes = {n: tuple(int(d) for d in row["shape"]) for n, row in inputs.items()}
        self.dtypes = {n: np.dtype(row["dtype"]) for n, row in inputs.items()}
        self.fixed_sequence_length = fixed_sequence_length or int(next(iter(self.shapes.values()))[-1])
        self.output_quantization = _output_quantization(path, self.outputs)

    @property
    def fully_accelerated(self) -> bool:
        return bool(self.model.is_fully_accelerated())

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, buffer in self.input_buffers.items():
            value = np.ascontiguousarray(inputs[name], dtype=self.dtypes[name])
            if value.shape != self.shapes[name]:
                raise RunnerError(f"input {name} has shape {value.shape}; this .tflite takes exactly {self.shapes[name]}")
            buffer.write(value)
        self.model.run_by_name(self.signature, self.input_buffers, self.output_buffers)  # asynchronous on the GPU
        outputs = {}
        for name, row in self.outputs.items():
            shape = tuple(int(d) for d in row["shape"])
            dtype = np.dtype(row["dtype"])
            value = self.output_buffers[name].read(int(np.prod(shape)), dtype).reshape(shape)
            outputs[name] = dequantized(value, self.output_quantization.get(name))  # int8 logits as real numbers
        return outputs


def _output_quantization(path, outputs: dict) -> dict[str, tuple[float, int]]:
    """(scale, zero point) of the integer outputs: CompiledModel's tensor details carry no
    quantization, the Interpreter's signature does (read without allocating)."""
    if not any(np.issubdtype(np.dtype(row["dtype"]), np.integer) for row in outputs.values()):
        return {}
    from pocketbert.formats.tflite.litert import interpreter_module

    signature = interpreter_module().Interpreter(str(path)).get_signature_runner()
    return integer_output_quantization(signature.get_output_details())
