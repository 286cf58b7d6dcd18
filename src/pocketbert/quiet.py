"""Keep the CLI to pocketbert's own lines while a library works."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Exporters and quantizers (torch.onnx, onnxruntime's tools, executorch, torchao) print
    progress to stdout, warn and log about their own internals (a missing torchvision, CUDA
    kernels this machine lacks): swallow all three for the duration."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)
