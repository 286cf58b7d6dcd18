"""No command exits 0 having written a quantized file that does not keep the model: the gate's
rule (trained weights: the task's floors; random weights: what they can show), the output
closeness figure it leans on, and the refusal through quantize, export --quantize and the
library, with nothing left behind unless --keep-below-floor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pocketbert.models.configs import load_config
from pocketbert.quality import gate
from pocketbert.quality.metrics import output_closeness

SEQ = 32
# measured: a random 2-layer MobileBERT classifier's static int8 TFLite file keeps output
# closeness 0.77 (label agreement 0.76, top-1 on random ids 1.000) while its dynamic int8
# file keeps 0.98
COLLAPSING, HEALTHY = "tflite-static-int8", "tflite-dynamic-int8"


@pytest.mark.unit
def test_output_closeness_is_one_minus_the_relative_error():
    rng = np.random.default_rng(0)
    # near-flat random-head logits: a big shared offset, tiny variation across texts
    reference = {"logits": -4.0 + 0.01 * rng.normal(size=(50, 3))}
    mask = np.ones((50, 7), dtype=bool)
    assert output_closeness(reference, {"logits": reference["logits"].copy()}, mask) == 1.0
    rounded = {"logits": reference["logits"] + 0.02 * rng.normal(size=(50, 3))}  # noise above the variation
    assert 0.99 < output_closeness(reference, rounded, mask) < 0.999
    zero = {"logits": np.zeros((50, 3))}
    assert output_closeness(reference, zero, mask) == pytest.approx(0.0, abs=1e-12)
    assert output_closeness(reference, {"logits": -reference["logits"]}, mask) == pytest.approx(-1.0)


@pytest.mark.unit
def test_output_closeness_of_per_token_outputs_counts_real_tokens_only():
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(4, 6, 8))
    mask = np.zeros((4, 6), dtype=bool)
    mask[:, :3] = True
    garbage_in_padding = hidden.copy()
    garbage_in_padding[:, 3:] = 1e6
    assert output_closeness({"h": hidden}, {"h": garbage_in_padding}, mask) == 1.0
    wrong_real_token = hidden.copy()
    wrong_real_token[0, 0] += 100
    assert output_closeness({"h": hidden}, {"h": wrong_real_token}, mask) < 0


@pytest.mark.unit
def test_trained_weights_keep_the_task_floors_and_random_weights_what_they_can_show():
    flat_logits = {"task": "text-classification", "sentences": 48, "label_agreement": 0.74, "output_closeness": 0.99}
    assert gate.failures(flat_logits, random_weights=True) == []  # near-ties flip, the outputs hold
    assert gate.failures(flat_logits, random_weights=False) == [
        "label_agreement 0.7400 < floor 0.95 (trained weights, real text, 48 sentences)"]
    collapsed = {**flat_logits, "label_agreement": 0.99, "output_closeness": 0.85}  # misses by 15%
    assert [line.split()[0] for line in gate.failures(collapsed, random_weights=True)] == ["output_closeness"]
    embedding = {"task": "feature-extraction", "sentences": 48, "cosine_mean": 0.9, "cosine_min": 0.5,
                 "nn_retention": 0.5, "output_closeness": 0.95}
    assert [line.split()[0] for line in gate.failures(embedding, random_weights=True)] == ["cosine_mean", "cosine_min"]
    assert gate.failures(None, random_weights=False) == []  # no tokenizer: not measured, said so elsewhere
    assert gate.failures({"error": "output logits has non-finite values"}, False) == [
        "real text: output logits has non-finite values"]


@pytest.mark.unit
def test_the_refusal_is_one_line_naming_the_figure_the_floor_and_the_way_out():
    below = gate.below_floor({"model.pt": {"sentences": 9, "output_closeness": 0.2, "cosine_mean": 0.5},
                              "model.ptl": {"sentences": 9, "output_closeness": 0.95}}, random_weights=True)
    assert list(below) == ["model.pt"]
    message = str(gate.refusal(below))
    assert "\n" not in message
    assert message.startswith("model.pt: output_closeness 0.2000 < floor 0.9") and "(and 1 more)" in message
    assert message.endswith("nothing written (--keep-below-floor writes it anyway)")


@pytest.mark.unit
def test_create_records_random_weights_and_a_save_keeps_the_record(tiny_checkpoint):
    config = load_config(tiny_checkpoint("bert", "text-classification"))
    assert config.random_weights
    assert config.to_dict()["pocketbert_random_weights"] == {"seed": 0}
    assert not config.replace(extra={}).random_weights


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint):
    return tiny_checkpoint("mobilebert", "text-classification")


@pytest.mark.integration
def test_quantize_refuses_a_collapsed_file_and_leaves_nothing(classifier, tmp_path):
    from pocketbert.quantize import quantize_model

    with pytest.raises(gate.BelowFloorError, match=r"model\.tflite: output_closeness 0\.[0-8]\d+ < floor 0\.9 \(random"):
        quantize_model(classifier, COLLAPSING, tmp_path / "q", seq_len=SEQ)
    assert not (tmp_path / "q").exists() and list(tmp_path.iterdir()) == []
    kept = quantize_model(classifier, COLLAPSING, tmp_path / "kept", seq_len=SEQ, keep_below_floor=True)
    assert list(kept.quantization["below_floor"]) == ["model.tflite"]
    assert json.loads((tmp_path / "kept" / "manifest.json").read_text())["quantization"]["below_floor"]
    healthy = quantize_model(classifier, HEALTHY, tmp_path / "ok", seq_len=SEQ)
    assert healthy.quantization["below_floor"] == {}
    assert healthy.files["model"].quality["output_closeness"] > 0.95


@pytest.mark.integration
def test_the_cli_exits_2_with_one_line_and_writes_on_request(classifier, tmp_path, capsys):
    from pocketbert.cli import main

    out = tmp_path / "int8"
    assert main(["export", str(classifier), "--format", "tflite", "--seq-len", str(SEQ), "--quantize", COLLAPSING,
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("pocketbert: error")]
    assert "Traceback" not in err and len(errors) == 1, err[-2000:]
    assert errors[0].startswith("pocketbert: error: model.tflite: output_closeness"), errors
    assert not out.exists()
    assert main(["quantize", str(classifier), "--recipe", COLLAPSING, "--seq-len", str(SEQ), "-o", str(out),
                 "--keep-below-floor"]) == 0
    assert "WARNING: model.tflite kept under the quality floors: output_closeness" in capsys.readouterr().err
    assert (out / "model.tflite").is_file()
