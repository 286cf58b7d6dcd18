"""A sharp non-linear head on the real all-MiniLM-L6-v2's sentence embeddings (issue 28): an
MLP fitted here on the fp32 embeddings of labelled reviews, then asked the same questions
on each int8 file's embeddings. A linear probe forgives small rotations of the embedding;
an MLP fitted to zero training loss has steeper, folded boundaries, so it shows what
the int8 rounding moves across one. Apart from the other real-checkpoint tests so that CI's
two workers share them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pocketbert.export import ExportOptions
from pocketbert.models.vocab import sentiment_rows
from pocketbert.pipelines import pipeline
from pocketbert.quality import metrics as quality
from pocketbert.quantize import quantize_model

pytestmark = pytest.mark.slow
SEQ = 64  # every held-out sentence fits, as in test_real_weights; the long texts are cut
FLIP_CEILING = 0.02  # issue 28: the head flips at most 2% of its decisions


def _fit_mlp(embeddings: np.ndarray, labels: np.ndarray) -> torch.nn.Module:
    """Two hidden ReLU layers, 400 full-batch Adam steps, no weight decay, no early stop:
    every training review right and the boundaries as steep as the data lets them be, the
    sharpest head a user is likely to fit. On one thread, whatever the worker's setting, so
    that the head and its near-boundary texts are the same on every machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        head = torch.nn.Sequential(torch.nn.Linear(embeddings.shape[1], 256), torch.nn.ReLU(),
                                   torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 2))
        x, y = torch.from_numpy(embeddings), torch.from_numpy(labels)
        optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
        for _ in range(400):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(head(x), y).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return head.eval()


def _decisions(head: torch.nn.Module, embeddings: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head(torch.from_numpy(embeddings)).argmax(-1).numpy()


@pytest.fixture(scope="module")
def head(minilm, tmp_path_factory):
    """The head, the held-out texts (the 100 reviews it was not fitted on, and the project's
    held-out sentences, short and long texts) and its fp32 decisions on them, from the fp32
    file at the int8 files' length (the long texts cut where theirs are)."""
    from pocketbert.export import export_model

    rows = sentiment_rows()
    floats = tmp_path_factory.mktemp("fp32") / "onnx"
    export_model(minilm, "sentence-embedding", "onnx", floats, ExportOptions(seq_len=SEQ))
    reference = pipeline("sentence-embedding", floats)
    train = reference.embed([text for text, _ in rows[:300]])
    labels = np.array([label == "positive" for _, label in rows[:300]], dtype=np.int64)
    fitted = _fit_mlp(train, labels)
    assert (_decisions(fitted, train) == labels).all()  # fitted to every training review
    texts = [text for text, _ in rows[300:]] + quality.default_texts()
    held_out = reference.embed(texts)
    truth = np.array([label == "positive" for _, label in rows[300:]])
    assert (_decisions(fitted, held_out[:100]) == truth).mean() > 0.8  # it learned the task (chance 0.5)
    return fitted, texts, _decisions(fitted, held_out)


# flips of 404 measured: onnx 3, tflite 7, executorch 5 (10 before its layers were smoothed and
# fitted by error feedback). ExecuTorch's file is not made here: its two lowerings took this
# test 70 s of CI, and the same recipe on the same encoder keeps a real classifier's labels
# in test_real_classifier (0.997 measured, floor 0.98)
CHECKED = ("onnx-dynamic-int8", "tflite-dynamic-int8")


@pytest.mark.parametrize("recipe", CHECKED)
def test_a_sharp_head_keeps_its_decisions_on_the_onnx_and_tflite_defaults(recipe, head, minilm, tmp_path):
    fitted, texts, expected = head
    quantize_model(minilm, recipe, tmp_path / "q", task="sentence-embedding", options=ExportOptions(seq_len=SEQ))
    got = _decisions(fitted, pipeline("sentence-embedding", tmp_path / "q").embed(texts))
    flips = float((got != expected).mean())
    assert flips <= FLIP_CEILING, (recipe, flips, int((got != expected).sum()), len(texts))
