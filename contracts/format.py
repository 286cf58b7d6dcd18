"""What a format plugin provides: the one place a file format's facts and code meet.

A format (ONNX, LiteRT, TorchScript, ExecuTorch, or one a user registers) is a ``Format``
subclass: its exporter, the runner for its files, its recipes and quantizer, its file
names and suffixes, its shape policy and input dtype, and how ``--exclude`` patterns find
its nodes. ``export_model``, ``quantize_model``, the harness, the protocols, the sweep, the
scan and the docs read these attributes instead of comparing format names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.models.modeling import PreTrainedModel
from pocketbert.contracts.accelerator import FileInspection
from pocketbert.contracts.options import BucketedOptions, FormatOptions
from pocketbert.contracts.recipe import Recipe, RecipeParams
from pocketbert.contracts.runner import Runner
from pocketbert.contracts.spec import DEFAULT_SEQUENCE_LENGTH, ExportSpec

ERROR_FEEDBACK_EXAMPLES = 512  # calibration examples for recipes with error feedback (the corpus has 250)

if TYPE_CHECKING:
    from pocketbert.contracts.artifact import Manifest

DEFAULT_ATOL = 1e-4  # validation tolerance (max abs diff) of a float export


@dataclass(frozen=True)
class ExportOptions:
    """The export options every format has, and the chosen format's own (its
    ``Format.option_type``; None: that type's defaults). Options of another format than the
    one exported to are an error, not a no-op (``export.check_options``)."""

    seq_len: int = DEFAULT_SEQUENCE_LENGTH
    batch: int = 1
    static: bool = False
    dynamic: bool = False  # formats static by default (executorch): dynamic batch and sequence
    atol: float = DEFAULT_ATOL
    require_trained_head: bool = False  # refuse a model whose head the checkpoint lacked
    format_options: FormatOptions | None = None

    def own(self, fmt: "Format") -> FormatOptions:
        """The format's own options: the ones given, or its defaults."""
        return self.format_options if type(self.format_options) is fmt.option_type else fmt.option_type()

    @property
    def buckets(self) -> tuple[int, ...]:
        """One static signature per length (``BucketedOptions``), () for a single length."""
        return self.format_options.seq_lens if isinstance(self.format_options, BucketedOptions) else ()

    def to_dict(self, fmt: "Format") -> dict:
        """The manifest's ``options``: the shared fields and the format's own (defaults
        included), side by side, as manifests have always held them."""
        general = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "format_options"}
        return {**general, **asdict(self.own(fmt))}


@dataclass
class QuantizeJob:
    """Everything a quantizer gets, in memory: the float PyTorch model and its spec (formats
    that quantize the model: TorchScript, ExecuTorch) and the float file (formats that
    quantize the file: ONNX, LiteRT)."""

    recipe: Recipe
    model: PreTrainedModel
    spec: ExportSpec
    directory: Path  # where the quantized file(s) go
    float_file: Path | None = None
    calibration: list[dict[str, np.ndarray]] | None = None
    exclude: tuple[str, ...] = ()  # the user's patterns
    excluded_nodes: list[str] = field(default_factory=list)  # what they matched (Format.match)
    options: ExportOptions = ExportOptions()


class Format:
    """Base of every format plugin; subclasses set the attributes and override the methods."""

    name: str = ""
    runtime: str = ""  # what runs the files (reports): onnxruntime, litert, torch, ...
    files: dict[str, str] = {}  # role -> file name, every file the exporter may write
    suffixes: dict[str, str] = {}  # file suffix -> the kind of file it is in reports (".ptl": "torchscript-lite")
    shapes: str = "dynamic"  # dynamic (static on request) | static (always) | static-by-default
    input_dtype: str = "int64"  # what the graph's id inputs are
    option_type: type[FormatOptions] = FormatOptions  # the export options of this format only, with their flags
    recipe_params: type[RecipeParams] = RecipeParams  # what its recipes carry beyond every recipe's fields
    quantizes: str = "file"  # "file": the float export; "model": the PyTorch model
    bench_role: str = "model"  # the file the paper protocols time
    recipes: tuple[Recipe, ...] = ()
    note: str = ""  # one line for help texts and docs
    deprecated: str = ""  # why a new app should not ship this format (manifest, CLI), "" if it should
    accelerator_recipes: dict[str, str] = {}  # export --accelerator X -> the recipe it needs ("" = the float export)
    accelerators: tuple[str, ...] = ("cpu",)  # what run and bench can put the file on (--accelerator)

    # ---- export ----------------------------------------------------------------------------
    def require(self) -> None:
        """Raise PocketbertError with the install command if the format's libraries are missing."""

    def is_static(self, options: ExportOptions) -> bool:
        if options.dynamic and (options.static or self.shapes == "static"):
            raise PocketbertError(f"--dynamic: {self.name} exports are always static" if self.shapes == "static"
                                  else "--static and --dynamic exclude each other")
        return options.static or self.shapes == "static" or (self.shapes == "static-by-default" and not options.dynamic)

    def export(self, model: PreTrainedModel, spec: ExportSpec, directory: Path,
               options: ExportOptions) -> tuple[dict[str, str], dict]:
        """Write the model file(s) into ``directory``; return {role: file name} and the
        manifest's ``details``."""
        raise NotImplementedError

    # ---- run -------------------------------------------------------------------------------
    def open(self, path: Path, input_names: tuple[str, ...], output_names: tuple[str, ...],
             threads: int | None, fixed_sequence_length: int | None) -> Runner:
        raise NotImplementedError

    def open_on(self, accelerator: str, path: Path, input_names: tuple[str, ...], output_names: tuple[str, ...],
                threads: int | None, fixed_sequence_length: int | None, fallback: bool = False) -> Runner:
        """``open`` on an accelerator. With ``fallback``, one the file or machine cannot
        use gives the CPU runner and a warning; without, an error (a benchmark must not
        time the CPU under the GPU's name)."""
        if accelerator not in self.accelerators:
            raise PocketbertError(f"--accelerator {accelerator}: {self.name} files run on "
                                  f"{', '.join(self.accelerators)} here")
        return self.open(path, input_names, output_names, threads, fixed_sequence_length)

    # ---- quantize --------------------------------------------------------------------------
    def quantize(self, job: QuantizeJob) -> tuple[dict[str, str], dict]:
        """Apply ``job.recipe``; write the file(s) into ``job.directory``; return {role:
        file name} and the quantization details."""
        raise PocketbertError(f"{self.name} has no quantizer")

    def match(self, float_file: Path, patterns: list[str]) -> dict[str, list[str]]:
        """The nodes each ``--exclude`` pattern keeps in float. Formats that quantize the
        PyTorch model match module paths themselves: the patterns are the answer."""
        return {p: [p] for p in patterns}

    def block_pattern(self, model: PreTrainedModel, module_paths: list[str]) -> str:
        """An ``--exclude`` pattern matching the nodes of these modules (the scan's blocks).
        Default: a regex over module paths, as ONNX name scopes and PyTorch name them."""
        import re

        return "^(" + "|".join(re.escape(p) for p in module_paths) + ")(\\.|$)"

    def calibration_limit(self, recipe: Recipe) -> int:
        """How many calibration examples to run: 100, as the MobileBERT paper calibrated.
        Error feedback needs many more rows than a layer has inputs (an FFN output: 1536), or
        it fits the weights to the few directions it saw."""
        return ERROR_FEEDBACK_EXAMPLES if recipe.params.error_feedback else 100

    # ---- accelerators ----------------------------------------------------------------------
    def inspect(self, path: Path, manifest: Manifest | None) -> FileInspection:
        """Which accelerators take the file, by its runtime's own checkers
        (``contracts/accelerator.py``); ``manifest`` is the artifact's, or None for a foreign file."""
        raise PocketbertError(f"{self.name} files have no accelerator checks")

    def kind_of(self, path: Path) -> str:
        return self.suffixes.get(Path(path).suffix, self.name)

