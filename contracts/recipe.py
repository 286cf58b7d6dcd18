"""A quantization recipe: a serialisable dataclass saying what is quantized and how.

Each format plugin declares its recipes (``Format.recipes``) and applies them
(``Format.quantize``); ``pocketbert.quantize.recipes`` collects them into one registry, and
``to_dict`` is saved in the manifest of every quantized artifact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Recipe:
    name: str
    format: str  # onnx | tflite | torchscript | executorch
    method: str  # dynamic | static | weight_only | float16
    weights: str = "int8"  # int8 | uint8 | float16
    activations: str = "float32"  # float32 (dynamic range: int8 at run time) | int8 | uint8 | int16
    per_channel: bool = False
    # 7-bit weights: onnxruntime's x86 u8 x s8 kernels without VNNI add pairs of products in
    # 16 bits, which full-range int8 weights overflow (up to 23% off in a layer, measured)
    reduce_range: bool = False
    # dynamic recipes: one run-time activation scale per tensor (onnxruntime.quantization) or
    # per token ("per-token", symmetric; "per-token-asymmetric": a zero point per token too)
    activation_scale: str = "per-tensor"
    calibration: str | None = None  # static recipes: minmax | entropy | percentile | histogram
    engine: str | None = None  # torchscript: the quantized engine the weights are packed for
    # static recipes: keep each attention's mask add and softmax in float. The additive mask
    # (-10000 on padded keys) would otherwise set the int8 range of the scores: one step of
    # ~40, every real score in one bucket, attention uniform, accuracy at chance.
    float_softmax: bool = False
    # static recipes: keep the ops that carry BERT's outlier channels in float (the FFN output,
    # residual adds, LayerNorm, GELU, batch matmuls: see each format's quantizer)
    float_outliers: bool = False
    io: str = "float"  # tflite static: float32 outputs, or the int8 codes (app dequantizes)
    description: str = ""

    @property
    def arithmetic(self) -> str:
        return arithmetic(self.to_dict())

    @property
    def per_token(self) -> bool:
        return self.activation_scale.startswith("per-token")

    @property
    def needs_calibration(self) -> bool:
        return self.calibration is not None

    def to_dict(self) -> dict:
        return {**asdict(self), "needs_calibration": self.needs_calibration}


def arithmetic(recipe: dict | None) -> str:
    """What the file's matrix products compute in, from a manifest's ``quantization``
    (``Recipe.to_dict``; None for a float file): "int8" when weights and activations meet
    in integer kernels (dynamic-range and static recipes), else "float" (float16 and
    weight-only files widen their weights to float before multiplying). The benchmark report
    holds a file to the matching GEMM peak."""
    if recipe and recipe.get("method") in ("dynamic", "static") and recipe.get("weights") in ("int8", "uint8"):
        return "int8"
    return "float"
