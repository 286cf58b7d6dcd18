"""ai-edge-litert, the runtime of .tflite files: imported in one place, with the install hint."""

from __future__ import annotations

from pocketbert.errors import PocketbertError

INSTALL_HINT = "pip install 'pocketbert[tflite]' (litert-torch and ai-edge-litert)"


def interpreter_module():
    """ai-edge-litert's interpreter, or the last tflite-runtime as a fallback."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        try:
            from tflite_runtime import interpreter  # type: ignore[no-redef]
        except ImportError:
            raise PocketbertError(f"running .tflite files needs ai-edge-litert: {INSTALL_HINT}") from None
    return interpreter
