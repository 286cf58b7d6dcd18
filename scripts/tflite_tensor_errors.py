"""Where a quantized .tflite loses its float file: every op's output, both files run on the same
text with all tensors kept (no delegate, so the float file's intermediates exist), the
quantized tensor dequantized, over the text's real tokens:

    rel   = RMS(quantized - float) / RMS(float)    the error the output carries
    added = rel / the largest rel of its inputs     what this op adds (1 = passes it on)

Ops that add more than ``--min-added`` and carry more than ``--min-rel`` are printed, per text:
one very short, one typical, one past the sequence (the held-out regimes).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/tflite_tensor_errors.py FLOAT_DIR QUANTIZED_DIR
"""
import argparse
import re
from pathlib import Path

import numpy as np

from pocketbert.formats.tflite.graph import subgraphs
from pocketbert.formats.tflite.litert import interpreter_module
from pocketbert.models.tokenizer import load_tokenizer
from pocketbert.models.vocab import heldout_lines, heldout_short_lines

parser = argparse.ArgumentParser()
parser.add_argument("float_dir", type=Path)
parser.add_argument("quantized_dir", type=Path)
parser.add_argument("--min-added", type=float, default=2.0)
parser.add_argument("--min-rel", type=float, default=0.01)
args = parser.parse_args()
module = interpreter_module()


def tensors(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every float or per-tensor-quantized tensor after one run, as float."""
    interpreter = module.Interpreter(str(path), experimental_preserve_all_tensors=True,
                                     experimental_op_resolver_type=module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = interpreter.get_signature_runner()
    runner(**feed)
    out = {}
    for detail in interpreter.get_tensor_details():
        try:
            value = interpreter.get_tensor(detail["index"])
        except ValueError:  # a constant folded away, or not allocated
            continue
        scales, zeros = detail["quantization_parameters"]["scales"], detail["quantization_parameters"]["zero_points"]
        if value.dtype in (np.int8, np.int16) and len(scales) == 1:
            value = (value.astype(np.float32) - zeros[0]) * scales[0]
        elif value.dtype != np.float32:
            continue
        out[detail["name"]] = value
    return out


tokenizer = load_tokenizer(args.float_dir)
float_file, quantized_file = args.float_dir / "model.tflite", args.quantized_dir / "model.tflite"
length = module.Interpreter(str(float_file)).get_signature_runner().get_input_details()["input_ids"]["shape"][-1]
graph = subgraphs(float_file)[0]
texts = {"very short": heldout_short_lines()[0], "typical": heldout_lines()[0],
         "past the sequence": " ".join(heldout_lines()[:12])}
for regime, text in texts.items():
    encoded = tokenizer(text, truncation=True, max_length=length, padding="max_length", return_tensors="np")
    feed = {name: encoded[name].astype(np.int32) for name in ("input_ids", "attention_mask", "token_type_ids")}
    real = int(feed["attention_mask"].sum())
    reference, candidate = tensors(float_file, feed), tensors(quantized_file, feed)
    print(f"== {regime} ({real} tokens): {text[:60]!r}")
    rel: dict[int, float] = {}
    for index, op in enumerate(graph.operators):
        output = op.outputs[0]
        name = graph.tensor_names[output]
        if name not in reference or name not in candidate or reference[name].shape != candidate[name].shape:
            continue
        a, b = reference[name], candidate[name]
        if a.ndim >= 2 and a.shape[-2] == length:  # [.., S, H]: the real tokens only
            a, b = a[..., :real, :], b[..., :real, :]
        rel[output] = float(np.sqrt(np.mean((a - b) ** 2)) / (np.sqrt(np.mean(a ** 2)) + 1e-12))
        added = rel[output] / max(max((rel.get(t, 0.0) for t in op.inputs if t >= 0), default=0.0), 1e-4)
        if (added > args.min_added and rel[output] > args.min_rel) or index == len(graph.operators) - 1:
            where = re.sub(r".*?(\w+Layer_\d+|Embeddings\w*|\w+Pooling\w*)", r"\1", name)[:70]
            print(f"{index:4d} {op.name:18s} rel {rel[output]:7.4f} added x{added:7.1f} "
                  f"range [{a.min():9.2f}, {a.max():9.2f}]  {where}")
