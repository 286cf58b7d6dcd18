"""Quantization-aware fine-tuning (``quantize --finetune STEPS``): the emulated rounding is
the file's, the run is recorded and reproducible, and on the real checkpoint it gains on
held-out text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import assert_one_line_error, pocketbert
from pocketbert.contracts.artifact import Artifact
from pocketbert.quality import metrics as quality
from pocketbert.quantize import FinetuneOptions, quantize_model

SEQ = 16
RECIPE = "tflite-full-integer-int8"


def _calibrated_emulation(model, tokenizer, bits: int, seq: int):
    """IntegerEmulation with its ranges from 96 corpus sentences, as a file's calibration."""
    from pocketbert.models.vocab import corpus_lines
    from pocketbert.quantize.finetune import _forward
    from pocketbert.quantize.integer_emulation import IntegerEmulation, IntegerScheme

    emulation = IntegerEmulation(IntegerScheme(activation_bits=bits))
    lines = corpus_lines()
    for start in range(0, 96, 16):
        batch = tokenizer(lines[start:start + 16], padding="max_length", truncation=True, max_length=seq,
                          return_tensors="pt")
        emulation.calibrate(lambda: _forward(model, dict(batch)))
    return emulation


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint("bert", "feature-extraction")


@pytest.mark.integration
def test_the_emulated_rounding_costs_what_the_files_does(checkpoint, tmp_path):
    """The model run under IntegerEmulation moves away from the float model as the
    every-op-int8 file does: the weights' per-channel rounding, and the activations' on top
    at 8 bits. On this tiny random model the file moves further (0.024 mean abs against the
    emulation's 0.006 at 8 bits, 0.005 at 16: not explained yet); on the real checkpoint the
    two lose the same (held-out pooled cosine 0.808 emulated, 0.794 the file), which the
    slow test below asserts."""
    from pocketbert.formats.tflite.runner import TfliteRunner
    from pocketbert.models import load_model
    from pocketbert.models.tokenizer import load_tokenizer
    from pocketbert.quantize.finetune import _forward

    quantize_model(checkpoint, RECIPE, tmp_path / "q", seq_len=SEQ, keep_below_floor=True)
    runner = TfliteRunner(tmp_path / "q" / "model.tflite", threads=1, fixed_sequence_length=SEQ)
    model, tokenizer = load_model(checkpoint).eval(), load_tokenizer(checkpoint)
    texts = quality.default_texts()[:24]
    encoded = [tokenizer(text, padding="max_length", truncation=True, max_length=SEQ, return_tensors="pt")
               for text in texts]
    with torch.no_grad():
        floats = [_forward(model, dict(e))["last_hidden_state"].numpy() for e in encoded]
    filed = [runner({name: e[name].numpy() for name in runner.input_names})["last_hidden_state"] for e in encoded]
    file_error = np.mean([np.abs(f - g).mean() for f, g in zip(filed, floats)])
    emulated_error = {}
    for bits in (8, 16):
        emulation = _calibrated_emulation(model, tokenizer, bits, SEQ)
        with torch.no_grad(), emulation:
            emulated = [_forward(model, dict(e))["last_hidden_state"].numpy() for e in encoded]
        assert len(emulation.sites) > 50  # every op of 2 layers, not only the matmuls
        emulated_error[bits] = np.mean([np.abs(f - g).mean() for f, g in zip(emulated, floats)])
    assert 0 < emulated_error[16] < emulated_error[8] < file_error, (emulated_error, file_error)


@pytest.mark.integration
def test_cli_fine_tunes_and_records_it_beside_the_post_training_file(checkpoint, tmp_path):
    from pocketbert.models.vocab import corpus_lines

    text = tmp_path / "text.txt"  # the fine-tune's text and calibration; the quality is measured on other text
    text.write_text("\n".join(corpus_lines()[:32]) + "\n")
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("\n".join(quality.default_texts()[:40]) + "\n")
    runs = []
    for name in ("a",):
        done = pocketbert("quantize", checkpoint, "--recipe", RECIPE, "--finetune", 6, "--seq-len", SEQ,
                          "--calibration", text, "--eval-text", held_out, "-o", tmp_path / name)
        assert done.returncode == 0, done.stderr
        assert "fine-tuned 6 steps" in done.stdout and "without it:" in done.stdout, done.stdout
        runs.append(Artifact.open(tmp_path / name).manifest)
    tuning = runs[0].quantization["finetune"]
    assert tuning["steps"] == 6 and tuning["seed"] == 0 and tuning["examples"] == 32
    assert tuning["before"]["sentences"] == tuning["float_drift"]["sentences"] == 40
    assert tuning["float_drift"]["cosine_mean"] < 1.0  # the weights moved
    written = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert written["quantization"]["finetune"]["before"] == tuning["before"]


@pytest.mark.integration
def test_the_seed_repeats_a_fine_tune(checkpoint):
    from pocketbert.models import load_model
    from pocketbert.models.tokenizer import load_tokenizer
    from pocketbert.models.vocab import corpus_lines
    from pocketbert.quantize.finetune import finetune
    from pocketbert.quantize.integer_emulation import IntegerScheme

    model, tokenizer = load_model(checkpoint), load_tokenizer(checkpoint)
    weights = []
    for seed in (0, 0, 1):
        tuned, report = finetune(model, IntegerScheme(), tokenizer, corpus_lines()[:32], SEQ,
                                 FinetuneOptions(steps=3, batch=4, seed=seed))
        weights.append(torch.cat([p.reshape(-1) for p in tuned.parameters()]))
        assert report.steps == 3 and report.seed == seed
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    original = torch.cat([p.reshape(-1) for p in model.parameters()])
    assert not torch.equal(original, weights[0])  # the teacher is left as it was, the copy moved
    assert torch.equal(original, torch.cat([p.reshape(-1) for p in load_model(checkpoint).parameters()]))


@pytest.mark.integration
def test_fine_tuning_takes_only_recipes_it_can_emulate(checkpoint, tmp_path):
    for recipe, fragment in [("tflite-dynamic-int8", "is not one"), ("onnx-static-int8-minmax", "is not one")]:
        assert_one_line_error(pocketbert("quantize", checkpoint, "--recipe", recipe, "--finetune", 5,
                                         "-o", tmp_path / recipe), "--finetune", fragment)
        assert not (tmp_path / recipe).exists()
    assert_one_line_error(pocketbert("quantize", checkpoint, "--format", "tflite", "--target", "cosine_mean>=0.99",
                                     "--finetune", 5, "-o", tmp_path / "t"), "--finetune takes one --recipe")
    with pytest.raises(Exception, match="steps >= 1"):
        FinetuneOptions(steps=0)


@pytest.mark.slow
def test_fine_tuning_gains_on_held_out_text_on_the_real_checkpoint(minilm, tmp_path):
    """all-MiniLM-L6-v2, every op int8, seq 16 (the CI budget): measured here, 50 steps of 8
    texts (23 s, one thread) take the file's held-out pooled cosine mean from 0.815 to 0.837,
    the tuned float model staying at 0.971 of the original (100 steps: 0.842 and 0.966). The
    emulation loses what the file does before any step (the seq-32 run: 0.808 against 0.794)."""
    from pocketbert.contracts.format import ExportOptions
    from pocketbert.models import load_model
    from pocketbert.models.tokenizer import load_tokenizer
    from pocketbert.quantize.finetune import _forward

    seq = 16
    manifest = quantize_model(minilm, RECIPE, tmp_path / "q", task="sentence-embedding", keep_below_floor=True,
                              options=ExportOptions(seq_len=seq),
                              finetune=FinetuneOptions(steps=50, batch=8, learning_rate=5e-5))
    tuning, after = manifest.quantization["finetune"], manifest.files["model"].quality
    before = tuning["before"]
    print(f"every-op int8, seq {seq}: pooled cosine mean {before['cosine_mean']:.3f} -> {after['cosine_mean']:.3f} "
          f"in {tuning['seconds']} s; tuned float model {tuning['float_drift']['cosine_mean']:.3f}")
    assert after["sentences"] == before["sentences"] == len(quality.default_texts())
    assert after["cosine_mean"] >= before["cosine_mean"] + 0.01, (before, after)
    assert tuning["float_drift"]["cosine_mean"] >= 0.9, tuning["float_drift"]
    assert tuning["last_loss"] < 0.7 * tuning["first_loss"], tuning

    model, tokenizer = load_model(minilm, task="sentence-embedding").eval(), load_tokenizer(minilm)
    emulation = _calibrated_emulation(model, tokenizer, 8, seq)
    with torch.no_grad():
        held_out = dict(tokenizer(quality.default_texts(), padding="max_length", truncation=True, max_length=seq,
                                  return_tensors="pt"))
        floats = _forward(model, held_out)["sentence_embedding"]
        with emulation:
            emulated = _forward(model, held_out)["sentence_embedding"]
    emulated_mean = float(torch.nn.functional.cosine_similarity(emulated, floats).mean())
    assert abs(emulated_mean - before["cosine_mean"]) < 0.05, (emulated_mean, before["cosine_mean"])


@pytest.mark.integration
def test_a_fine_tune_that_makes_the_file_worse_is_refused(checkpoint, tmp_path, monkeypatch, capsys):
    """Measured on MiniLM in MobileBERT's graph, one learning rate for every weight: 100
    steps took the file from 0.815 to 0.679.
    Here a fine-tune that scrambles the weights stands in for it."""
    import copy

    from helpers import perturb
    from pocketbert.cli import main
    from pocketbert.models.vocab import corpus_lines
    from pocketbert.quantize import finetune as finetuning

    def scrambled(model, scheme, tokenizer, texts, seq_len, options, progress=False):
        return perturb(copy.deepcopy(model), scale=0.05), finetuning.FinetuneReport(1, 1, 0, 1, 0.0, 1.0, 1.0)

    monkeypatch.setattr(finetuning, "finetune", scrambled)
    text = tmp_path / "text.txt"
    text.write_text("\n".join(corpus_lines()[:16]) + "\n")
    args = ["quantize", str(checkpoint), "--recipe", RECIPE, "--finetune", "1", "--seq-len", str(SEQ),
            "--calibration", str(text), "--eval-text", str(text)]
    assert main([*args, "-o", str(tmp_path / "worse")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pocketbert: error")]
    assert len(errors) == 1 and "--finetune made it worse on held-out text: cosine_mean" in errors[0], errors
    assert not (tmp_path / "worse").exists()
    assert main([*args, "--keep-below-floor", "-o", str(tmp_path / "kept")]) == 0
    assert (tmp_path / "kept" / "model.tflite").is_file()
