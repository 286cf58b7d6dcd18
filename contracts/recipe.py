"""A quantization recipe: a serialisable dataclass saying what is quantized and how.

Each format plugin declares its recipes (``Format.recipes``) and applies them
(``Format.quantize``); ``pocketbert.quantize.recipes`` collects them into one registry, and
``to_dict`` is saved in the manifest of every quantized artifact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum


class Method(str, Enum):
    """How a recipe quantizes; quantizers dispatch on these members, never on spellings.
    A ``str`` so that manifests, tables and comparisons with the old spellings keep working."""

    DYNAMIC = "dynamic"  # int8 weights, activations quantized at run time
    STATIC = "static"  # int8 weights and calibrated activations
    WEIGHT_ONLY = "weight_only"  # int8 weights widened to float at load
    FLOAT16 = "float16"  # float16 weights

    @property
    def integer(self) -> bool:
        """Whether weights and activations meet in integer kernels."""
        return self in (Method.DYNAMIC, Method.STATIC)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RecipeParams:
    """Base of a format's own recipe parameters (``Format.recipe_params``); a format with
    none uses it as is. Its fields are written into the manifest beside the shared ones."""

    # weight codes chosen against the calibration activations' Gram matrices
    # (formats/gptq.py) rather than rounded to nearest: the same file layout and speed.
    # Keyword-only: a format's own fields keep their positions (TorchScriptParams("qnnpack"))
    error_feedback: bool = field(default=False, kw_only=True)

    @property
    def float_outputs(self) -> bool:
        """Whether the quantized file still returns float outputs (a format whose recipes can
        hand the app integer codes says otherwise)."""
        return True

    @property
    def length_mixed_calibration(self) -> bool:
        """Error feedback fits the weights to the activations calibration shows: without very
        short texts and full sequences among them it trades those texts' accuracy away (real
        all-MiniLM-L6-v2, ONNX per-token: held-out short-text min 0.987 rounded to nearest,
        0.981 fitted on 100 sentences, 0.989 on the 250 of the corpus mixed across lengths)."""
        return self.error_feedback


@dataclass(frozen=True)
class Recipe:
    """What every recipe has; the format's own parameters are ``params``."""

    name: str
    format: str  # a registered format's name
    method: Method  # a Method, or its spelling ("dynamic" ...)
    weights: str = "int8"  # int8 | uint8 | float16
    activations: str = "float32"  # float32 (dynamic range: int8 at run time) | int8 | uint8 | int16 | uint16
    per_channel: bool = False
    calibration: str | None = None  # static recipes: minmax | entropy | percentile | histogram
    # static recipes: keep each attention's mask add and softmax in float. The additive mask
    # (-10000 on padded keys) would otherwise set the int8 range of the scores: one step of
    # ~40, every real score in one bucket, attention uniform, accuracy at chance.
    float_softmax: bool = False
    # static recipes: keep the ops that carry BERT's outlier channels in float (the FFN output,
    # residual adds, LayerNorm, GELU, batch matmuls: see each format's quantizer)
    float_outliers: bool = False
    params: RecipeParams = field(default_factory=RecipeParams)  # the format's own (Format.recipe_params)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", Method(self.method))

    @property
    def arithmetic(self) -> str:
        return arithmetic(self.to_dict())

    @property
    def sixteen_bit_activations(self) -> bool:
        """Whether calibrated activations get 16 bits: resolution to spare, so their ranges
        should hold every length of text rather than clip the rare extremes."""
        return self.activations in ("int16", "uint16")

    @property
    def length_mixed_calibration(self) -> bool:
        """Whether calibration text mixes lengths (quantize.calibration.length_mixed)."""
        return self.sixteen_bit_activations or self.params.length_mixed_calibration

    @property
    def needs_calibration(self) -> bool:
        return self.calibration is not None

    def to_dict(self) -> dict:
        """The manifest's ``quantization``: the shared fields and the format's parameters side
        by side (one flat record, as reports, the sweep and ``arithmetic`` read it)."""
        shared = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "params"}
        return {**shared, "method": self.method.value, **asdict(self.params), "needs_calibration": self.needs_calibration}


def arithmetic(recipe: dict | None) -> str:
    """What the file's matrix products compute in, from a manifest's ``quantization``
    (``Recipe.to_dict``; None for a float file): "int8" when weights and activations meet
    in integer kernels (dynamic-range and static recipes), else "float" (float16 and
    weight-only files widen their weights to float before multiplying). The benchmark report
    holds a file to the matching GEMM peak."""
    if recipe and recipe.get("method") in (Method.DYNAMIC, Method.STATIC) and recipe.get("weights") in ("int8", "uint8"):
        return "int8"
    return "float"
