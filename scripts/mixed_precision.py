"""Which activations of the NPU file need 16 bits (issue 27): the every-op-integer 16-bit
recipe (tflite-full-integer-a16w8) with one kind of op's activations at 8 bits at a time, then
the kinds that held together, each file measured as quantize measures every file (held-out
text in every length regime, pooled cosine min/mean, tie-aware neighbour retention). An 8-bit
activation is what an NPU runs at twice the rate and half the memory traffic of a 16-bit one;
ai-edge-quantizer puts a requantize between an 8-bit and a 16-bit tensor.

Start from a float file exported for the NPU (``export --accelerator npu``: LayerNorm's
variance as a MUL, integer from the lookups on):

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/mixed_precision.py FLOAT_NPU_DIR WORK_DIR [--kinds K ...]

A kind can name some of its ops by their output tensors' names, ``KIND:REGEX``; the
FULLY_CONNECTED roles of the BERT form (what formats/tflite/mixed_activations.py records):

    --together 'FULLY_CONNECTED:SelfAttention_self/[^;]*Linear_(query|key|value);'     # Q/K/V
    --together 'FULLY_CONNECTED:BertAttention_attention/[^;]*DenseNorm_output/[^;]*Linear_dense;'  # reads the context
    --together 'FULLY_CONNECTED:DenseActivation_intermediate/[^;]*Linear_dense;'       # FFN input
"""
import argparse
import json
import re
from pathlib import Path

from ai_edge_quantizer import recipe as presets

from pocketbert.errors import PocketbertError
from pocketbert.formats.tflite import quantize as tflite_quantize
from pocketbert.quantize import quantize_model

RECIPE = "tflite-full-integer-a16w8"
EIGHT_BITS = presets.static_wi8_ai8()[0]["op_config"]["activation_tensor_config"]  # asymmetric int8 per tensor

parser = argparse.ArgumentParser()
parser.add_argument("float_dir", type=Path)
parser.add_argument("work", type=Path)
parser.add_argument("--kinds", nargs="+", default=["BATCH_MATMUL", "SOFTMAX", "GELU", "FULLY_CONNECTED", "ADD",
                                                   "MUL", "SUB", "MEAN", "RSQRT", "RESHAPE", "TRANSPOSE", "GATHER"])
parser.add_argument("--together", nargs="*", help="only measure these kinds at 8 bits together")
parser.add_argument("--floor", type=float, default=0.98, help="short-text pooled cosine min a kind must keep")
args = parser.parse_args()
sixteen_bit_entries = tflite_quantize.recipe_entries


def measure(kinds: list[str]) -> dict:
    """The recipe with ``kinds``' activations at 8 bits, quantized and measured."""

    def entries(recipe, exclude):
        found = sixteen_bit_entries(recipe, exclude)
        base = next(e for e in found if e.get("op_config", {}).get("activation_tensor_config"))
        eight = []
        for group in kinds:  # KIND, or KIND:REGEX (the ops of that kind whose output names match)
            kind, _, regex = group.partition(":")
            eight.append({**base, "operation": kind, "regex": regex or base["regex"],
                          "op_config": {**base["op_config"], "activation_tensor_config": EIGHT_BITS}})
        return found[:1] + eight + found[1:]  # before the exclusions: the last matching entry wins

    tflite_quantize.recipe_entries = entries
    out = args.work / ("8bit-" + re.sub(r"\W+", "_", "-".join(kinds)) if kinds else "16bit")
    try:
        manifest = quantize_model(args.float_dir, RECIPE, out, force=True, keep_below_floor=True)
    except PocketbertError as exc:
        return {"kinds": kinds, "error": str(exc)[:200]}
    finally:
        tflite_quantize.recipe_entries = sixteen_bit_entries
    quality = manifest.files["model"].quality
    row = {"kinds": kinds, "mb": round(manifest.files["model"].bytes / 1e6, 1),
           "tie_aware": round(quality.get("nn_retention_tie_aware", float("nan")), 4)}
    for regime, figures in quality.get("regimes", {}).items():
        row[regime] = [round(figures["cosine_min"], 4), round(figures["cosine_mean"], 4)]
    return row


args.work.mkdir(parents=True, exist_ok=True)
if args.together is not None:
    print(json.dumps(measure(args.together)), flush=True)
else:
    held = []
    for kind in [None, *args.kinds]:
        row = measure([kind] if kind else [])
        print(json.dumps(row), flush=True)
        if kind and row.get("short", [0])[0] >= args.floor:
            held.append(kind)
    if held:
        print(json.dumps(measure(held)), flush=True)
