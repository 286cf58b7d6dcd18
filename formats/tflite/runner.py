"""A .tflite on LiteRT's Interpreter behind the Runner interface."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pocketbert.errors import first_line
from pocketbert.formats.tflite.litert import interpreter_module
from pocketbert.quiet import captured_stderr
from pocketbert.runtime.runner import RunnerError


class TfliteRunner:
    """A .tflite file on LiteRT's Interpreter (ai-edge-litert), through its named signature.

    XNNPACK (the default delegate) is on unless ``xnnpack=False``. Outputs of a file with
    int8 I/O come back dequantized with the tensor's scale and zero point, so every caller
    compares real logits."""

    def __init__(self, path: str | Path, threads: int | None = None, xnnpack: bool = True,
                 fixed_sequence_length: int | None = None):
        interpreter = interpreter_module()
        resolver = interpreter.OpResolverType.AUTO if xnnpack else interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with captured_stderr():  # LiteRT logs "Created XNNPACK delegate" on fd 2
                self.interpreter = interpreter.Interpreter(
                    str(path), num_threads=threads, experimental_op_resolver_type=resolver
                )
                self.signature = self.interpreter.get_signature_runner()
        except Exception as exc:
            raise RunnerError(f"{path}: LiteRT cannot load it ({first_line(exc)})") from None
        details = self.signature.get_input_details()
        self.input_names = tuple(details)
        self.dtypes = {name: d["dtype"] for name, d in details.items()}
        self.shapes = {name: tuple(int(n) for n in d["shape"]) for name, d in details.items()}
        outputs = self.signature.get_output_details()
        self.output_names = tuple(outputs)
        self.output_quantization = integer_output_quantization(outputs)
        self.fixed_sequence_length = fixed_sequence_length or int(next(iter(self.shapes.values()))[-1])
        self._first_call = True

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {}
        for name in self.input_names:
            value = np.asarray(inputs[name], dtype=self.dtypes[name])
            if value.shape != self.shapes[name]:
                raise RunnerError(f"input {name} has shape {value.shape}; this .tflite takes exactly {self.shapes[name]}")
            feed[name] = value
        if self._first_call:  # LiteRT applies XNNPACK at the first invoke and logs it on fd 2
            with captured_stderr() as lines:
                outputs = self.signature(**feed)
            self._first_call = False
            for line in lines:
                if not line.startswith("INFO: Created TensorFlow Lite XNNPACK delegate"):
                    print(line, file=sys.stderr)
        else:
            outputs = self.signature(**feed)
        return {name: dequantized(outputs[name], self.output_quantization.get(name)) for name in self.output_names}


def integer_output_quantization(details: dict) -> dict[str, tuple[float, int]]:
    """(scale, zero point) of the outputs a full-integer file returns as int8/int16, from a
    signature's output details."""
    return {name: d["quantization"] for name, d in details.items()
            if np.issubdtype(d["dtype"], np.integer) and d["quantization"][0] > 0}


def dequantized(value: np.ndarray, quantization: tuple[float, int] | None) -> np.ndarray:
    """An output as real numbers, so every caller compares real logits."""
    if quantization is None:
        return np.asarray(value, dtype=np.float32)
    scale, zero_point = quantization
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
