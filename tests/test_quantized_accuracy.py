"""int8 costs accuracy points, measured on a task a tiny model really learns.

For each architecture a 2-layer model with the project vocabulary is fine-tuned for a few
seconds on the synthetic task (fp32 >= 95% on held-out sentences); dynamic int8 in each
format must stay within 1 point of fp32, and what full int8 does is printed (recorded)."""

from __future__ import annotations

import pytest

from pocketbert.models import registry
from pocketbert.models.tokenizer import BertTokenizerFast
from pocketbert.models.vocab import build_vocab
from pocketbert.pipelines import pipeline
from pocketbert.quantize import quantize_model
from pocketbert.quantize.synthetic_task import LABELS, accuracy, fine_tune, make_examples

DYNAMIC = ["onnx-dynamic-int8", "tflite-dynamic-int8", "torchscript-dynamic-int8-x86"]
FULL_INT8 = ["onnx-static-int8-minmax", "tflite-static-int8"]
SEQ = 32


@pytest.mark.parametrize("arch", list(registry.ARCHITECTURES))
def test_dynamic_int8_keeps_accuracy_within_one_point(arch, tmp_path):
    spec = registry.get_architecture(arch)
    vocab = build_vocab(30522)
    tokenizer = spec.tokenizer_class({t: i for i, t in enumerate(vocab)}, model_max_length=SEQ)
    config = spec.fake_config(vocab_size=len(vocab), max_position_embeddings=64)
    config = config.with_labels(2).replace(id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    model = spec.model_class("text-classification")(config).init_weights(0)
    fine_tune(model, tokenizer, make_examples(2000, seed=1), seq_len=SEQ)
    source = tmp_path / "ckpt"
    model.save_pretrained(source)
    tokenizer.save_pretrained(source)
    held_out = make_examples(300, seed=99)
    fp32 = accuracy(pipeline("text-classification", source), held_out)
    assert fp32 >= 0.95, f"{arch}: fp32 accuracy {fp32:.3f}"
    results = {}
    for recipe in DYNAMIC + FULL_INT8:
        quantize_model(source, recipe, tmp_path / recipe, seq_len=SEQ, calibration_file=None)
        results[recipe] = accuracy(pipeline("text-classification", tmp_path / recipe), held_out)
    print(f"{arch}: fp32 {fp32:.3f} " + " ".join(f"{r} {a:.3f}" for r, a in results.items()))
    for recipe in DYNAMIC:
        assert results[recipe] >= fp32 - 0.01, (recipe, results[recipe], fp32)
    # Full int8 can collapse to chance (it does for BERT, DistilBERT and SqueezeBERT here);
    # keeping the attention blocks in float is what rescues it.
    rescued = quantize_model(source, "onnx-static-int8-minmax", tmp_path / "rescued", seq_len=SEQ, exclude=("attention",))
    assert rescued["quantization"]["excluded_nodes"]
    kept = accuracy(pipeline("text-classification", tmp_path / "rescued"), held_out)
    print(f"{arch}: onnx-static-int8-minmax with attention in float {kept:.3f}")
    assert kept >= fp32 - 0.01, kept
