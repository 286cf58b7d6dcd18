"""Google's path for the anchors comparison (scripts/anchors.sh, benchmarks/anchors.py):
litert-torch's plain convert of transformers' own model, and ai-edge-quantizer's own
dynamic int8 preset on that file.

A script of its own, run in the project's .venv, because the anchor IS transformers' model:
pocketbert's package never imports transformers (the tests' oracle), so this step lives
outside it, as Optimum's steps live in their own venv.

    python scripts/anchor_google.py convert CHECKPOINT OUT.tflite
    python scripts/anchor_google.py quantize SOURCE.tflite OUT.tflite
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import sys
from pathlib import Path

SEQ_LEN = 128  # the comparison's static length (benchmarks/anchors.py)


def convert(checkpoint: Path, target: Path) -> None:
    """``litert_torch.convert(model, sample_args)`` with int64 [1, 128] samples (it makes the
    inputs int32, named args_0.., in the order BERT's forward lists them: ids, mask, token
    types)."""
    import litert_torch
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    takes_types = "token_type_ids" in inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if takes_types else [])
    sample = {"input_ids": torch.randint(1000, model.config.vocab_size, (1, SEQ_LEN)),
              "attention_mask": torch.ones(1, SEQ_LEN, dtype=torch.long),
              "token_type_ids": torch.zeros(1, SEQ_LEN, dtype=torch.long)}
    target.parent.mkdir(parents=True, exist_ok=True)
    litert_torch.convert(model, tuple(sample[n] for n in names)).export(str(target))
    shutil.copy(checkpoint / "config.json", target.parent / "config.json")  # bench reads the vocabulary size there


def quantize(source: Path, target: Path) -> None:
    """ai-edge-quantizer's own dynamic int8 preset (int8 weights, float activations)."""
    from ai_edge_quantizer import quantizer, recipe

    target.parent.mkdir(parents=True, exist_ok=True)
    qt = quantizer.Quantizer(str(source), recipe.dynamic_wi8_afp32())
    qt.quantize().export_model(str(target), overwrite=True)
    shutil.copy(source.parent / "config.json", target.parent / "config.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["convert", "quantize"])
    p.add_argument("source", type=Path, help="the checkpoint (convert) or the .tflite (quantize)")
    p.add_argument("target", type=Path)
    args = p.parse_args(argv)
    (convert if args.step == "convert" else quantize)(args.source, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
