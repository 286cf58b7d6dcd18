"""manifest.json is one typed record (contracts/artifact.py: Manifest), read and checked by
Manifest.from_dict, written by write_manifest alone; quantize and parity measure closeness
with one function (quality/agreement.py) on random ids and on real sentences alike."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest

from pocketbert.contracts.artifact import MANIFEST_NAME, Artifact, FileEntry, Manifest, write_manifest
from pocketbert.errors import PocketbertError
from pocketbert.quality.agreement import agreement
from pocketbert.quality.validate import OutputNamesError, OutputValuesError

pytestmark = pytest.mark.unit

FLOAT = {
    "format": "onnx",
    "architecture": "bert",
    "model_class": "BertForMaskedLM",
    "task": "fill-mask",
    "source": "ckpt",
    "inputs": [{"name": "input_ids", "shape": ["batch", "sequence"], "dtype": "int64"}],
    "outputs": [{"name": "logits", "shape": ["batch", "sequence", 30], "dtype": "float32"}],
    "static": False,
    "spec": {"batch": 1, "sequence": 16},
    "files": {"model": {"path": "model.onnx", "sha256": "ab" * 32, "bytes": 123,
                        "validation": {"atol": 1e-4, "passed": True, "max_abs_diff": 1e-6, "cases": []}}},
    "untrained_weights": [],
    "deprecated": None,
    "tokenizer_files": ["vocab.txt"],
    "details": {"opset": 18},
    "export_seconds": 1.5,
    "options": {"seq_len": 16},
    "quantization": None,
    "versions": {"pocketbert": "0"},
    "created": "2026-01-01T00:00:00+00:00",
}


def quantized_manifest() -> dict:
    data = copy.deepcopy(FLOAT)
    data["files"] = {"model": {"path": "model.onnx", "sha256": "cd" * 32, "bytes": 40, "float_bytes": 123,
                               "agreement_with_float": {"logits": {"cosine": 0.99}}, "quality": None}}
    data["quantization"] = {"name": "onnx-dynamic-int8", "details": {}}
    return data


@pytest.mark.parametrize("data", [FLOAT, quantized_manifest()], ids=["float", "quantized"])
def test_a_manifest_round_trips_to_the_same_json(data, tmp_path):
    manifest = Manifest.from_dict(copy.deepcopy(data), tmp_path / MANIFEST_NAME)
    assert manifest.to_dict() == data
    assert list(manifest.to_dict()) == list(data)  # the layout too
    assert manifest.files["model"].path == "model.onnx" and manifest.inputs[0].shape == ["batch", "sequence"]


def test_keys_of_another_version_survive_a_round_trip(tmp_path):
    data = {**copy.deepcopy(FLOAT), "from_the_future": {"x": 1}, "accelerator_check": {"verified": True}}
    data["files"]["model"]["signature"] = "seq_8"
    data["inputs"][0]["description"] = "token ids"
    manifest = Manifest.from_dict(data, tmp_path / MANIFEST_NAME)
    assert manifest.extra == {"from_the_future": {"x": 1}} and manifest.accelerator_check == {"verified": True}
    assert manifest.to_dict() == data
    assert "accelerator_check" not in Manifest.from_dict(copy.deepcopy(FLOAT), tmp_path / MANIFEST_NAME).to_dict()


@pytest.mark.parametrize("change,why", [
    (lambda m: m.pop("files"), "(no files)"),
    (lambda m: m.pop("model_class"), "(no model_class)"),
    (lambda m: m["files"]["model"].pop("sha256"), "(files.model needs a path and a sha256)"),
    (lambda m: m.update(inputs=[{"shape": []}]), "(inputs must be a list of named tensors)"),
    (lambda m: m.update(quantization="int8"), "(quantization must be an object)"),
    (lambda m: m["files"]["model"].update(path="../secret.onnx"), "points outside"),
])
def test_a_malformed_manifest_is_refused_in_one_line(change, why, tmp_path):
    data = copy.deepcopy(FLOAT)
    change(data)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(PocketbertError) as error:  # ArtifactError, or confinement's
        Artifact.open(tmp_path)
    assert why in str(error.value) and "\n" not in str(error.value)
    assert str(tmp_path / MANIFEST_NAME) in str(error.value)


def test_write_manifest_is_the_one_writer_and_returns_what_it_wrote(tmp_path):
    manifest = Manifest.from_dict(copy.deepcopy(FLOAT), tmp_path / MANIFEST_NAME)
    written = write_manifest(tmp_path, dataclasses.replace(manifest, details={"path": tmp_path}))
    assert written.created and written.created != FLOAT["created"]
    assert written.details == {"path": str(tmp_path)}  # what JSON has no type for: as a string
    assert Artifact.open(tmp_path).manifest == written
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]  # no partial file left
    bad = dataclasses.replace(manifest, files={"model": FileEntry("/etc/passwd", "0" * 64)})
    with pytest.raises(PocketbertError, match="outside"):
        write_manifest(tmp_path, bad)
    assert Artifact.open(tmp_path).manifest == written  # the refused one did not land


# ---- agreement -------------------------------------------------------------------------------------------
def _runner(outputs_by_batch):
    calls = iter(outputs_by_batch)
    return lambda inputs: next(calls)


def test_agreement_pools_top1_over_real_tokens_of_every_batch():
    """Two batches: 3 of 4 tokens agree in the first; in the second all 6 real tokens agree
    and the 2 padded ones do not (they do not count). Pooled: 9 of 10 (a mean of the
    batches' fractions would say 0.875)."""
    one = {"input_ids": np.ones((1, 4), np.int64), "attention_mask": np.ones((1, 4), np.int64)}
    two = {"input_ids": np.ones((2, 4), np.int64), "attention_mask": np.array([[1, 1, 1, 1], [1, 1, 0, 0]])}
    ref_one = np.eye(3)[[0, 1, 2, 0]][None] * 2.0  # (1, 4, 3), argmax 0 1 2 0
    cand_one = ref_one.copy()
    cand_one[0, 3] = [0.0, 0.0, 2.0]  # the last token's argmax moves: diff 2
    ref_two = np.stack([np.eye(3)[[0, 1, 2, 0]], np.eye(3)[[1, 1, 0, 0]]]) * 2.0
    cand_two = ref_two.copy()
    cand_two[1, 2:] = np.eye(3)[[2, 2]] * 2.0  # padded positions disagree
    pooled = np.ones((1, 8), np.float32)
    reference = _runner([{"logits": ref_one, "pooler_output": pooled}, {"logits": ref_two, "pooler_output": pooled}])
    candidate = _runner([{"logits": cand_one, "pooler_output": pooled}, {"logits": cand_two, "pooler_output": pooled}])
    figures = agreement(reference, candidate, [one, two], ["logits", "pooler_output"], "model.onnx")
    logits = figures["logits"]
    assert logits["top1_agreement"] == pytest.approx(0.9)
    assert logits["max_abs_diff"] == 2.0
    # the mean of each batch's mean (2 of 12 values off by 2; 4 of 24, padding included)
    assert logits["mean_abs_diff"] == pytest.approx((4 / 12 + 8 / 24) / 2)
    assert logits["cosine"] == pytest.approx(0.75)  # the lowest batch's: 12/16 and 24/32
    assert figures["pooler_output"] == {"max_abs_diff": 0.0, "mean_abs_diff": 0.0, "cosine": pytest.approx(1.0),
                                        "top1_agreement": None}  # no argmax over hidden dimensions


def test_agreement_refuses_missing_and_non_finite_outputs_naming_where():
    batch = {"input_ids": np.ones((1, 2), np.int64), "attention_mask": np.ones((1, 2), np.int64)}
    good = {"logits": np.ones((1, 3))}
    with pytest.raises(OutputNamesError, match=r"model.onnx on corpus sentences at input shape \[1, 2\]: output logits"):
        agreement(lambda i: good, lambda i: {}, [batch], ["logits"], "model.onnx on corpus sentences")
    with pytest.raises(OutputValuesError, match="output logits has non-finite values"):
        agreement(lambda i: good, lambda i: {"logits": np.full((1, 3), np.nan)}, [batch], ["logits"], "q")
    with pytest.raises(OutputValuesError, match="the reference's output logits has non-finite values"):
        agreement(lambda i: {"logits": np.full((1, 3), np.inf)}, lambda i: good, [batch], ["logits"], "q")
