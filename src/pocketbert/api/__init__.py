"""pocketbert's Python API: every command as a function that returns a typed result.

The ``pocketbert`` CLI is a thin layer over these functions: it parses flags, calls one, and
prints ``str(result)`` and its warnings. A result reads three ways: ``str()`` is the CLI's
text, a notebook shows it as a table (``_repr_markdown_``), ``records()`` gives plain dicts
(``pandas.DataFrame(result.records())``). Bad input raises ``PocketbertError`` with the line
the CLI prints. Functions import their heavy dependencies (torch, runtimes, Ray) when called.

    from pocketbert import api
    api.create("mobilebert", "out/m", layers=2)
    q = api.export("out/m", "onnx", "out/m-int8", quantize="onnx-dynamic-int8")
    api.parity("out/m", ["out/m-int8"]).passed
"""

from pocketbert.api.benchmarking import BenchReport, bench, compare
from pocketbert.api.checkpoints import Architectures, Checkpoint, ModelInfo, architectures, create, info
from pocketbert.api.exporting import AndroidAssets, Exported, Written, android_assets, export
from pocketbert.api.quantizing import (BlockScan, Quantized, Sweep, TargetSearch, pool, quantize, quantize_to_target, scan,
                                       sweep)
from pocketbert.api.result import Result
from pocketbert.api.running import Answers, run
from pocketbert.api.verifying import Inspection, ParityReport, inspect, parity
from pocketbert.errors import PocketbertError

# the CLI command each function serves (tests/test_api.py: every command has one)
COMMANDS = {
    "create": create, "models": architectures, "info": info, "export": export, "android-assets": android_assets,
    "quantize": quantize, "quantize-sweep": sweep, "bench": bench, "parity": parity, "inspect": inspect, "run": run,
}

__all__ = ["Answers", "AndroidAssets", "Architectures", "BenchReport", "BlockScan", "COMMANDS", "Checkpoint", "Exported",
           "Inspection", "ModelInfo", "ParityReport", "PocketbertError", "Quantized", "Result", "Sweep", "TargetSearch",
           "Written", "android_assets", "architectures", "bench", "compare", "create", "export", "info", "inspect",
           "parity", "pool", "quantize", "quantize_to_target", "run", "scan", "sweep"]
