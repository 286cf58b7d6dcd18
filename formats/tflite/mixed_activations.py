"""Which ops of a 16-bit-activation integer file take 8-bit activations (mixed a8/a16).

An NPU runs an op on 8-bit activations at about twice the rate and half the memory traffic of
16-bit ones, but one 8-bit range per tensor breaks a real BERT where outlier channels meet it.
Measured on all-MiniLM-L6-v2 (NPU export, seq 64, 304 held-out texts, each file against the
float one; short-text pooled cosine min / tie-aware neighbour retention; all 16-bit: 0.994 /
0.977), one group of ops at 8 bits at a time (``scripts/mixed_precision.py``):

- the projections reading the attention context (they write the residual stream): 0.993 / 0.980
- attention products (BATCH_MATMUL): 0.990 / 0.970; softmax: 0.992 / 0.967
- Q/K/V projections: 0.981 / 0.977; FFN input projections: 0.969 / 0.961; GELU: 0.967 / 0.961
- LayerNorm's 1 / std (RSQRT and its eps ADD): 0.970 / 0.957
- every FULLY_CONNECTED: 0.749 / 0.793

What breaks is an 8-bit *input* that carries outlier channels (a LayerNorm's output, which
the Q/K/V and FFN projections read; GELU's) or a per-token scale (1 / std multiplies a whole
token by its rounding error). The context does not carry them. At seq 128 the whole inside of
each attention at 8 bits (scores, softmax, context, projection) kept short-text min 0.988 but
tie-aware retention 0.970 (a softmax row of 128 probabilities on LiteRT's fixed 1/256 step),
against 0.992 / 0.984 for the context projections alone (all 16-bit: 0.994 / 0.987): those
are the 8-bit ops, found by the graph's structure, not by names, so in every architecture's
graph. A rule on each tensor's own rounding noise (its worst row's SNR at 8 bits on the
calibration text) was tried first and does not rank them: the RSQRTs measured >= 30 dB a
value and cost the most, the attention products 26-30 dB and cost little.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

_PROJECTIONS = ("FULLY_CONNECTED", "CONV_2D")  # SqueezeBERT's are 1x1 convolutions


@dataclass(frozen=True)
class EightBitOp:
    """An op the file runs on 8-bit activations: the record the manifest keeps."""

    op: str  # BATCH_MATMUL ...
    scope: str  # its output tensor names, as ai-edge-quantizer matches ops ("name;")


def context_projections(source: Path) -> list[EightBitOp]:
    """Per attention of every subgraph: the projection reading its context (the output of the
    BATCH_MATMUL that reads a SOFTMAX's output), and the layout ops between them."""
    from pocketbert.formats.tflite.graph import LAYOUT, before_layout, subgraphs

    found: dict[str, EightBitOp] = {}
    for graph in subgraphs(source):
        consumers, producers = graph.consumers(), graph.producers()
        contexts = [op for op in graph.operators if op.name == "BATCH_MATMUL"
                    and any(getattr(before_layout(t, producers)[0], "name", None) == "SOFTMAX" for t in op.inputs)]
        pending = [reader for op in contexts for t in op.outputs for reader in consumers.get(t, [])]
        while pending:
            op = pending.pop()
            if op.name not in (*LAYOUT, *_PROJECTIONS):
                continue  # the context read by anything else stays as it is
            scope = "".join(graph.tensor_names[t] + ";" for t in op.outputs)
            if scope not in found:
                found[scope] = EightBitOp(op.name, scope)
                if op.name in LAYOUT:
                    pending += [reader for t in op.outputs for reader in consumers.get(t, [])]
    return list(found.values())


def eight_bit_entries(ops: list[EightBitOp], template: dict) -> list[dict]:
    """ai-edge-quantizer entries giving ``ops`` 8-bit activations (asymmetric int8 per tensor);
    ``template``: the recipe's entry whose op_config they copy. Where an 8-bit and a 16-bit op
    meet, the quantizer puts a requantize between them."""
    from ai_edge_quantizer import recipe as presets

    eight = presets.static_wi8_ai8()[0]["op_config"]["activation_tensor_config"]
    return [{**template, "regex": "^" + re.escape(op.scope) + "$", "operation": op.op,
             "op_config": {**template["op_config"], "activation_tensor_config": eight}} for op in ops]


def precision_map(ops: list[EightBitOp]) -> dict:
    """The manifest's account: the 8-bit ops by name, and why every other op keeps 16 bits."""
    return {"eight_bit_ops": len(ops), "ops": [asdict(op) for op in ops],
            "sixteen_bit": "every other op: an 8-bit input carrying outlier channels (a LayerNorm's or GELU's output) "
                           "or a per-token scale (LayerNorm's 1 / std) loses a real model "
                           "(pocketbert.formats.tflite.mixed_activations)"}
