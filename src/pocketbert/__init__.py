"""pocketbert: compact BERTs from a PyTorch reference to the files an Android app ships.

The code lives in top-level folders (models/, contracts/, formats/, quality/, export/,
quantize/, benchmarks/) that this
package exposes as ``pocketbert.models`` and so on; docs/design.md is the map.
"""

__version__ = "0.1.0"

from pocketbert.errors import PocketbertError  # noqa: E402

__all__ = ["PocketbertError", "__version__"]
