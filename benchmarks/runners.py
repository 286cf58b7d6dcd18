"""One interface over every way of running a model: ``runner(inputs) -> outputs``.

Inputs and outputs are dicts of numpy arrays named as the model names them
(input_ids, attention_mask, token_type_ids -> logits, start_logits ...). Pipelines, the
parity checks and the latency harness are written against this, so an exported file
plugs in wherever the PyTorch model does. Each runner converts dtypes itself (int64 ids
for PyTorch; exported graphs may want int32).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from pocketbert.errors import PocketbertError
from pocketbert.models.modeling import PreTrainedModel


class Runner(Protocol):
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    # a graph exported with static shapes takes exactly this many tokens; None = any
    fixed_sequence_length: int | None

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


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


class RunnerError(PocketbertError):
    """A model file that cannot be loaded or run."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class OnnxRunner:
    """An ONNX Runtime session (.onnx, or .ort for ONNX Runtime Mobile) on the CPU."""

    DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}

    def __init__(self, path: str | Path, threads: int | None = None, fixed_sequence_length: int | None = None, **_: Any):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RunnerError(f"{path}: ONNX Runtime cannot load it ({_first_line(exc)})") from None
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.dtypes = {i.name: self.DTYPES.get(i.type, np.int64) for i in self.session.get_inputs()}
        self.fixed_sequence_length = fixed_sequence_length

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.asarray(inputs[name], dtype=self.dtypes[name]) for name in self.input_names}
        outputs = self.session.run(None, feed)
        return {name: np.asarray(value, dtype=np.float32) for name, value in zip(self.output_names, outputs)}


class TorchScriptRunner:
    """A traced TorchScript module (.pt) or its lite-interpreter form (.ptl, PyTorch Mobile).

    TorchScript keeps no input/output names: they come from the artifact's manifest."""

    def __init__(
        self,
        path: str | Path,
        input_names: Sequence[str],
        output_names: Sequence[str],
        threads: int | None = None,
        fixed_sequence_length: int | None = None,
        **_: Any,
    ):
        try:
            if str(path).endswith(".ptl"):
                from torch.jit.mobile import _load_for_lite_interpreter

                self.module = _load_for_lite_interpreter(str(path))
            else:
                self.module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise RunnerError(f"{path}: PyTorch cannot load it as TorchScript ({_first_line(exc)})") from None
        self.input_names, self.output_names = tuple(input_names), tuple(output_names)
        self.threads = threads
        self.fixed_sequence_length = fixed_sequence_length

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        args = [torch.as_tensor(np.asarray(inputs[name], dtype=np.int64)) for name in self.input_names]
        with torch.inference_mode():
            outputs = self.module(*args)
        return {name: value.float().numpy() for name, value in zip(self.output_names, outputs)}


class TfliteRunner:
    """A .tflite file on LiteRT's Interpreter (ai-edge-litert), through its named signature.

    XNNPACK (the default delegate) is on unless ``xnnpack=False``. Outputs of a file with
    int8 I/O come back dequantized with the tensor's scale and zero point, so every caller
    compares real logits."""

    def __init__(self, path: str | Path, threads: int | None = None, xnnpack: bool = True,
                 fixed_sequence_length: int | None = None, **_: Any):
        from pocketbert.export.tflite_export import captured_stderr, interpreter_module

        interpreter = interpreter_module()
        resolver = interpreter.OpResolverType.AUTO if xnnpack else interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with captured_stderr():  # LiteRT logs "Created XNNPACK delegate" on fd 2
                self.interpreter = interpreter.Interpreter(
                    str(path), num_threads=threads, experimental_op_resolver_type=resolver
                )
                self.signature = self.interpreter.get_signature_runner()
        except Exception as exc:
            raise RunnerError(f"{path}: LiteRT cannot load it ({_first_line(exc)})") from None
        details = self.signature.get_input_details()
        self.input_names = tuple(details)
        self.dtypes = {name: d["dtype"] for name, d in details.items()}
        self.shapes = {name: tuple(int(n) for n in d["shape"]) for name, d in details.items()}
        outputs = self.signature.get_output_details()
        self.output_names = tuple(outputs)
        # (scale, zero point) of outputs a full-integer file returns as int8/int16
        self.output_quantization = {
            name: d["quantization"] for name, d in outputs.items()
            if np.issubdtype(d["dtype"], np.integer) and d["quantization"][0] > 0
        }
        self.fixed_sequence_length = fixed_sequence_length or int(next(iter(self.shapes.values()))[-1])

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {}
        for name in self.input_names:
            value = np.asarray(inputs[name], dtype=self.dtypes[name])
            if value.shape != self.shapes[name]:
                raise RunnerError(f"input {name} has shape {value.shape}; this .tflite takes exactly {self.shapes[name]}")
            feed[name] = value
        outputs = self.signature(**feed)
        return {name: self._dequantize(name, outputs[name]) for name in self.output_names}

    def _dequantize(self, name: str, value: np.ndarray) -> np.ndarray:
        if name not in self.output_quantization:
            return np.asarray(value, dtype=np.float32)
        scale, zero_point = self.output_quantization[name]
        return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)


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

    def __init__(
        self,
        path: str | Path,
        input_names: Sequence[str],
        output_names: Sequence[str],
        threads: int | None = None,
        fixed_sequence_length: int | None = None,
        **_: Any,
    ):
        from pocketbert.export.executorch_export import runtime
        from pocketbert.export.tflite_export import captured_stderr

        executorch, bindings = runtime()
        self._set_threads(bindings, threads)
        with captured_stderr() as log:  # the runtime logs why a load failed on fd 2
            try:
                self.method = executorch.load_program(Path(path)).load_method("forward")
            except Exception as exc:
                reasons = [line.split("] ", 1)[-1] for line in log if line.startswith("[")]
                detail = "; ".join([*reasons[-1:], _first_line(exc)])
                raise RunnerError(f"{path}: ExecuTorch cannot load it ({detail})") from None
        meta = self.method.metadata
        self.shapes = [tuple(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
        self.input_names, self.output_names = tuple(input_names), tuple(output_names)
        if len(self.input_names) != len(self.shapes):
            raise RunnerError(f"{path}: the program takes {len(self.shapes)} inputs, the manifest names {len(self.input_names)}")
        self.threads = bindings._threadpool_get_thread_count()
        self.fixed_sequence_length = fixed_sequence_length
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
        from pocketbert.export.tflite_export import captured_stderr

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
            raise RunnerError(f"ExecuTorch failed to run the program ({_first_line(exc)})") from None
        return {name: value.float().numpy() for name, value in zip(self.output_names, outputs)}


RUNNERS_BY_SUFFIX: dict[str, type] = {
    ".tflite": TfliteRunner,
    ".onnx": OnnxRunner,
    ".ort": OnnxRunner,
    ".pt": TorchScriptRunner,
    ".ptl": TorchScriptRunner,
    ".pte": ExecutorchRunner,
}


def runner_for_file(path: str | Path, manifest: dict | None = None, threads: int | None = None):
    """The runner for an exported file, its names and static length taken from the manifest."""
    path = Path(path)
    cls = RUNNERS_BY_SUFFIX.get(path.suffix)
    if cls is None:
        raise RunnerError(f"{path}: unknown model file type (known: {', '.join(RUNNERS_BY_SUFFIX)})")
    manifest = manifest or {}
    inputs, outputs = manifest.get("inputs", []), manifest.get("outputs", [])
    last = inputs[0]["shape"][-1] if inputs else None
    return cls(
        path,
        input_names=[i["name"] for i in inputs],
        output_names=[o["name"] for o in outputs],
        threads=threads,
        fixed_sequence_length=last if isinstance(last, int) else None,
    )


def open_runner(path: str | Path, threads: int | None = None, role: str | None = None, task: str | None = None):
    """A runner for a checkpoint directory (loaded for ``task``), an artifact directory, or
    a model file inside one."""
    from pocketbert.export.artifact import Artifact, is_artifact
    from pocketbert.models import load_model

    path = Path(path)
    if path.is_file():
        if not is_artifact(path.parent):
            raise RunnerError(f"{path}: not inside an export artifact (no manifest.json beside it)")
        artifact = Artifact.open(path.parent)
        roles = [r for r, entry in artifact.manifest["files"].items() if entry["path"] == path.name]
        if not roles:
            raise RunnerError(f"{path}: not a model file listed in {path.parent / 'manifest.json'}")
        return runner_for_file(artifact.model_path(roles[0]), artifact.manifest, threads)
    if is_artifact(path):
        artifact = Artifact.open(path)
        return runner_for_file(artifact.model_path(role or "model"), artifact.manifest, threads)
    return TorchRunner(load_model(path, task=task), threads=threads)
