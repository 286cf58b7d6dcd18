"""ONNX Runtime on the CPU behind the Runner interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketbert.errors import first_line
from pocketbert.contracts.runner import RunnerError


class OnnxRunner:
    """An ONNX Runtime session (.onnx, or .ort for ONNX Runtime Mobile) on the CPU."""

    DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}

    def __init__(self, path: str | Path, threads: int | None = None, fixed_sequence_length: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RunnerError(f"{path}: ONNX Runtime cannot load it ({first_line(exc)})") from None
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.dtypes = {i.name: self.DTYPES.get(i.type, np.int64) for i in self.session.get_inputs()}
        self.shapes = {i.name: tuple(d if isinstance(d, int) else None for d in i.shape)
                       for i in self.session.get_inputs()}
        static = {shape[-1] for shape in self.shapes.values() if shape and shape[-1] is not None}
        # a static file without a manifest (a foreign one) says its length itself
        self.fixed_sequence_length = fixed_sequence_length or (static.pop() if len(static) == 1 else None)

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.asarray(inputs[name], dtype=self.dtypes[name]) for name in self.input_names}
        outputs = self.session.run(None, feed)
        return {name: np.asarray(value, dtype=np.float32) for name, value in zip(self.output_names, outputs)}
