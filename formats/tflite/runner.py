"""A .tflite on LiteRT's Interpreter behind the Runner interface."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pocketbert.errors import first_line
from pocketbert.contracts import buckets
from pocketbert.formats.tflite.litert import interpreter_module
from pocketbert.quiet import captured_stderr
from pocketbert.contracts.runner import RunnerError


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
                signatures = self.interpreter.get_signature_list()
                self.sequence_buckets = buckets.bucket_lengths(signatures)
                if self.sequence_buckets:
                    self.bucket_runners = {n: self.interpreter.get_signature_runner(buckets.bucket_signature(n))
                                           for n in self.sequence_buckets}
                    self.signature = self.bucket_runners[self.sequence_buckets[-1]]
                    details, outputs = self.signature.get_input_details(), self.signature.get_output_details()
                    shortest = self.bucket_runners[self.sequence_buckets[0]].get_output_details()
                    self.output_axes = buckets.sequence_axes(shortest, outputs)
                elif signatures:
                    self.signature = self.interpreter.get_signature_runner()
                    details, outputs = self.signature.get_input_details(), self.signature.get_output_details()
                else:  # a file without a signature (older converters): its tensors, by name
                    self.signature = self._tensors
                    self.interpreter.allocate_tensors()
                    details = {d["name"]: d for d in self.interpreter.get_input_details()}
                    outputs = {d["name"]: d for d in self.interpreter.get_output_details()}
        except Exception as exc:
            raise RunnerError(f"{path}: LiteRT cannot load it ({first_line(exc)})") from None
        self.details = details
        self.input_names = tuple(details)
        self.dtypes = {name: d["dtype"] for name, d in details.items()}
        self.shapes = {name: tuple(int(n) for n in d["shape"]) for name, d in details.items()}
        self.output_names = tuple(outputs)
        self.output_quantization = integer_output_quantization(outputs)
        # bucketed: any length up to the longest bucket
        self.fixed_sequence_length = None if self.sequence_buckets else (
            fixed_sequence_length or int(next(iter(self.shapes.values()))[-1]))
        self._first_call = True

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        signature, length, bucket = self.signature, None, None
        if self.sequence_buckets:
            length = np.shape(inputs[self.input_names[0]])[-1]
            bucket = buckets.pick(self.sequence_buckets, length)
            signature = self.bucket_runners[bucket]
        feed = {}
        for name in self.input_names:
            value = np.asarray(inputs[name], dtype=self.dtypes[name])
            expected = self.shapes[name]
            if bucket is not None:
                value, expected = buckets.padded(value, bucket), (*expected[:-1], bucket)
            if value.shape != expected:
                raise RunnerError(f"input {name} has shape {value.shape}; this .tflite takes exactly {expected}")
            feed[name] = value
        if self._first_call:  # LiteRT applies XNNPACK at the first invoke and logs it on fd 2
            with captured_stderr() as lines:
                outputs = signature(**feed)
            self._first_call = False
            for line in lines:
                if not line.startswith("INFO: Created TensorFlow Lite XNNPACK delegate"):
                    print(line, file=sys.stderr)
        else:
            outputs = signature(**feed)
        result = {name: dequantized(outputs[name], self.output_quantization.get(name)) for name in self.output_names}
        if bucket is not None:
            result = {name: buckets.trimmed(value, self.output_axes.get(name), length) for name, value in result.items()}
        return result


    def _tensors(self, **feed: np.ndarray) -> dict[str, np.ndarray]:
        """What a signature runner does, for a file that has none."""
        for name, value in feed.items():
            self.interpreter.set_tensor(self.details[name]["index"], value)
        self.interpreter.invoke()
        return {d["name"]: self.interpreter.get_tensor(d["index"]) for d in self.interpreter.get_output_details()}


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
