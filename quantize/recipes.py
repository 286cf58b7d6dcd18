"""Quantization recipes: serialisable dataclasses, one registry for every format.

A recipe names what is quantized and how; the format's quantizer applies it, and the
recipe (``to_dict``) is saved in the manifest of every quantized artifact. The CLI, the
tests and the docs read ``RECIPES``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pocketbert.errors import PocketbertError


@dataclass(frozen=True)
class Recipe:
    name: str
    format: str  # onnx | tflite | torchscript | executorch
    method: str  # dynamic | static | weight_only | float16
    weights: str = "int8"  # int8 | float16
    activations: str = "float32"  # float32 (dynamic range: int8 at run time) | int8 | int16
    per_channel: bool = False
    calibration: str | None = None  # static recipes: minmax | entropy | percentile | histogram
    engine: str | None = None  # torchscript: the quantized engine the weights are packed for
    # static recipes: keep each attention's mask add and softmax in float. The additive mask
    # (-10000 on padded keys) would otherwise set the int8 range of the scores: one step of
    # ~40, every real score in one bucket, attention uniform, accuracy at chance.
    float_softmax: bool = False
    io: str = "float"  # tflite static: float32 outputs, or the int8 codes (app dequantizes)
    description: str = ""

    @property
    def needs_calibration(self) -> bool:
        return self.calibration is not None

    def to_dict(self) -> dict:
        return {**asdict(self), "needs_calibration": self.needs_calibration}


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        # ONNX Runtime: onnxruntime.quantization
        Recipe("onnx-dynamic-int8", "onnx", "dynamic", description="int8 weights, activations quantized at run time"),
        Recipe("onnx-dynamic-int8-per-channel", "onnx", "dynamic", per_channel=True,
               description="as onnx-dynamic-int8 with one scale per output channel"),
        Recipe("onnx-static-int8-minmax", "onnx", "static", float_softmax=True, activations="int8", per_channel=True, calibration="minmax",
               description="QDQ int8 weights and activations, ranges from calibration min/max"),
        Recipe("onnx-static-int8-entropy", "onnx", "static", float_softmax=True, activations="int8", per_channel=True, calibration="entropy",
               description="QDQ int8, activation ranges minimising KL divergence"),
        Recipe("onnx-static-int8-percentile", "onnx", "static", float_softmax=True, activations="int8", per_channel=True,
               calibration="percentile", description="QDQ int8, activation ranges at the 99.999th percentile"),
        # LiteRT: ai-edge-quantizer on the converted .tflite
        Recipe("tflite-dynamic-int8", "tflite", "dynamic", per_channel=True,
               description="dynamic-range int8 (weights int8, activations quantized at run time)"),
        Recipe("tflite-weight-only-int8", "tflite", "weight_only", per_channel=True,
               description="int8 weights dequantized to float at load: smaller file, float compute"),
        Recipe("tflite-static-int8", "tflite", "static", float_softmax=True, activations="int8", per_channel=True, calibration="minmax",
               description="int8 weights and activations (float I/O; mask add and softmax in float), calibrated"),
        Recipe("tflite-full-integer-int8", "tflite", "static", activations="int8", per_channel=True, calibration="minmax",
               io="int8", description="every op int8, int8 logits out: for integer-only accelerators"),
        Recipe("tflite-static-a16w8", "tflite", "static", float_softmax=True, activations="int16", per_channel=True, calibration="minmax",
               description="int8 weights with 16-bit activations, calibrated"),
        Recipe("tflite-float16", "tflite", "float16", weights="float16",
               description="float16 weights (FLOAT_CASTING), float32 compute"),
        # PyTorch Mobile: torch.ao dynamic quantization of nn.Linear, then traced
        Recipe("torchscript-dynamic-int8-qnnpack", "torchscript", "dynamic", engine="qnnpack",
               description="int8 Linear weights packed for QNNPACK (ARM phones)"),
        Recipe("torchscript-dynamic-int8-x86", "torchscript", "dynamic", engine="x86",
               description="int8 Linear weights packed for x86 (FBGEMM/oneDNN): for measuring here"),
        # ExecuTorch: PT2E with the XNNPACK quantizer (torchao) on the PyTorch model, lowered to XNNPACK
        Recipe("executorch-dynamic-int8", "executorch", "dynamic", per_channel=True,
               description="int8 per-channel Linear/Conv weights, activations quantized at run time (XNNPACK)"),
        Recipe("executorch-static-int8", "executorch", "static", float_softmax=True, activations="int8", per_channel=True,
               calibration="histogram", description="int8 weights and activations (mask add and softmax in float), calibrated"),
    )
}


def get_recipe(name: str, fmt: str | None = None) -> Recipe:
    if name not in RECIPES:
        raise PocketbertError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
    recipe = RECIPES[name]
    if fmt is not None and recipe.format != fmt:
        valid = [r.name for r in RECIPES.values() if r.format == fmt]
        raise PocketbertError(f"recipe {name} is for {recipe.format}, not {fmt} (for {fmt}: {', '.join(valid)})")
    return recipe
