"""The contract every format is written against, below export, quantize and benchmarks.

- ``spec``: what an exported graph takes and gives (names, axes, dtypes, example inputs).
- ``artifact``: the directory an export writes and reading it back (``Artifact.spec()``).
- ``runner``: one interface over every way of running a model, and the PyTorch reference.
- ``recipe``: a quantization recipe as a serialisable dataclass.
- ``format``: what a format plugin provides (exporter, runner, quantizer, file names);
  the plugins themselves live in ``pocketbert.formats``, which registers them.
"""
