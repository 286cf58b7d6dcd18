"""Keep the CLI to pocketbert's own lines while a library works."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Capture what C++ code writes to fd 2 (LiteRT, the converters and ExecuTorch log
    there); the lines are available once the block ends."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())


@contextlib.contextmanager
def quiet_libraries(native_stderr: bool = False) -> Iterator[list[str]]:
    """Exporters and quantizers (torch.onnx, onnxruntime's tools, litert-torch,
    ai-edge-quantizer, executorch, torchao) print progress to stdout, warn and log about their
    own internals (a missing torchvision, CUDA kernels this machine lacks): swallow all three
    for the duration, and with ``native_stderr`` what their C++ code writes to fd 2 too
    (yielded as lines, for the reason of a failure)."""
    with contextlib.ExitStack() as stack:
        lines = stack.enter_context(captured_stderr()) if native_stderr else []
        stack.enter_context(warnings.catch_warnings())
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield lines
        finally:
            logging.disable(logging.NOTSET)
