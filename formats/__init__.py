"""The format registry: every file format pocketbert exports, runs and quantizes.

Each built-in format is one package here (``onnx``, ``tflite``, ``torchscript``,
``executorch``) whose ``FORMAT`` is a ``pocketbert.contracts.format.Format``. Adding a
runtime is one plugin and one ``register`` call: export, quantize, bench, parity, the
protocols, the sweep and the CLI read ``FORMATS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.formats import executorch, onnx, tflite, torchscript
from pocketbert.contracts.format import Format
from pocketbert.contracts.runner import Runner, RunnerError, TorchRunner

if TYPE_CHECKING:
    from pocketbert.contracts.artifact import Manifest

FORMATS: dict[str, Format] = {}


def register(plugin: Format) -> Format:
    """Add a format (its suffixes must be new); returns it, so a plugin module can end
    with ``FORMAT = register(MyFormat())``."""
    taken = {suffix: name for name, fmt in FORMATS.items() for suffix in fmt.suffixes}
    clash = [s for s in plugin.suffixes if s in taken and taken[s] != plugin.name]
    if clash:
        raise PocketbertError(f"format {plugin.name}: suffix {clash[0]} belongs to {taken[clash[0]]}")
    for recipe in plugin.recipes:
        if type(recipe.params) is not plugin.recipe_params:
            raise PocketbertError(f"format {plugin.name}: recipe {recipe.name} carries {type(recipe.params).__name__}, "
                                  f"not the format's {plugin.recipe_params.__name__}")
    FORMATS[plugin.name] = plugin
    return plugin


def unregister(name: str) -> None:
    FORMATS.pop(name, None)


for _module in (onnx, torchscript, tflite, executorch):  # the order docs and tables list them
    register(_module.FORMAT)


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise PocketbertError(f"unsupported format {name!r} (supported: {', '.join(FORMATS)})")
    return FORMATS[name]


def suffixes() -> list[str]:
    return [suffix for fmt in FORMATS.values() for suffix in fmt.suffixes]


# Threads for runners opened without a count in this process; None: the runtime's default (every
# core). An experiment's job on a worker sets its CPU share here (executor.run_job): two jobs on
# two cores, each with onnxruntime's default of both, ran 2.3x slower apiece than one alone.
_process_threads: int | None = None


def set_process_threads(threads: int | None) -> int | None:
    """Set the default above; returns the one it replaces."""
    global _process_threads
    previous, _process_threads = _process_threads, threads
    return previous


def format_for_file(path: str | Path) -> Format:
    suffix = Path(path).suffix
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            return fmt
    raise RunnerError(f"{path}: unknown model file type (known: {', '.join(suffixes())})")


def runner_for_file(path: str | Path, manifest: Manifest | None = None, threads: int | None = None,
                    accelerator: str = "cpu", fallback: bool = False) -> Runner:
    """The runner for an exported file, its names and static length taken from the manifest,
    on ``accelerator`` (``Format.open_on``)."""
    path = Path(path)
    fmt = format_for_file(path)
    threads = _process_threads if threads is None else threads
    inputs, outputs = (manifest.inputs, manifest.outputs) if manifest is not None else ([], [])
    last = inputs[0].shape[-1] if inputs and inputs[0].shape else None
    runner = fmt.open_on(
        accelerator,
        path,
        tuple(i.name for i in inputs),
        tuple(o.name for o in outputs),
        threads,
        last if isinstance(last, int) else None,
        fallback,
    )
    for kind, listed, found in (("inputs", inputs, runner.input_names), ("outputs", outputs, runner.output_names)):
        names = sorted(row.name for row in listed)
        if listed and names != sorted(found):
            raise RunnerError(f"{path}: the file's {kind} are {', '.join(sorted(found))}, its manifest says "
                              f"{', '.join(names)} (a file of another model?)")
    return runner


def open_foreign(path: str | Path, threads: int | None = None, accelerator: str = "cpu") -> Runner:
    """A runner for a model file pocketbert did not export: names, static shapes and dtypes
    from the file itself (``contracts/foreign.py`` tells its inputs apart)."""
    from pocketbert.contracts.foreign import input_roles

    path = Path(path)
    threads = _process_threads if threads is None else threads
    runner = format_for_file(path).open_on(accelerator, path, (), (), threads, None)
    if not runner.input_names:  # timing it at "seq 128" would measure a constant
        raise RunnerError(f"{path}: the graph takes no inputs; a BERT-family file takes token ids")
    input_roles(runner.input_names, str(path))  # more inputs than a BERT takes: refused here
    floats = [name for name, dtype in getattr(runner, "dtypes", {}).items() if np.issubdtype(dtype, np.floating)]
    if floats:
        raise RunnerError(f"{path}: input {floats[0]} is floating point; pocketbert feeds token ids "
                          "(a graph that takes embeddings is not a BERT-family file it can measure)")
    return runner


def open_runner(path: str | Path, threads: int | None = None, role: str | None = None, task: str | None = None,
                accelerator: str = "cpu", fallback: bool = False, foreign: bool = False) -> Runner:
    """A runner for a checkpoint directory (loaded for ``task``), an artifact directory, or
    a model file inside one, on ``accelerator`` (a checkpoint runs on PyTorch's CPU). With
    ``foreign``, also a model file outside any export (``open_foreign``)."""
    from pocketbert.models import load_model
    from pocketbert.contracts.artifact import Artifact, is_artifact

    path = Path(path)
    if path.is_file():
        if not is_artifact(path.parent):
            if foreign:
                return open_foreign(path, threads, accelerator)
            raise RunnerError(f"{path}: not inside an export artifact (no manifest.json beside it)")
        artifact = Artifact.open(path.parent)
        return runner_for_file(artifact.model_path(artifact.role_of(path)), artifact.manifest, threads, accelerator,
                               fallback)
    if is_artifact(path):
        artifact = Artifact.open(path)
        return runner_for_file(artifact.model_path(role or "model"), artifact.manifest, threads, accelerator, fallback)
    if accelerator != "cpu":
        raise RunnerError(f"--accelerator {accelerator}: {path} is a checkpoint (PyTorch on the CPU); export it first")
    return TorchRunner(load_model(path, task=task), threads=threads)


__all__ = ["FORMATS", "Format", "RunnerError", "TorchRunner", "format_for_file", "get_format", "open_foreign", "open_runner",
           "register", "runner_for_file", "unregister"]
