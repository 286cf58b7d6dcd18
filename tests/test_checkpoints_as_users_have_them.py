"""Checkpoints as users have them: a head the checkpoint lacks is recorded and said loudly
(or refused with --require-trained-head), and a tokenizer the model cannot take is refused
at load with one line (tiny models; the real tokenizer.json-only checkpoint is in
test_real_sentence_embedding.py)."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error, fake_model, pocketbert

from pocketbert.export import ExportOptions, export_model
from pocketbert.models import create_checkpoint, load_model
from pocketbert.models.tokenizer import TokenizerError, load_tokenizer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def encoder_only(tmp_path_factory):
    """A bare encoder checkpoint with a tokenizer (as sentence-transformers models ship)."""
    path = tmp_path_factory.mktemp("encoder") / "ckpt"
    create_checkpoint("bert", path, task="feature-extraction", layers=1)
    return path


def test_the_missing_head_is_recorded_in_the_model_and_the_manifest(encoder_only, tmp_path):
    with pytest.warns(UserWarning, match="the head is untrained"):
        model = load_model(encoder_only, task="text-classification")
    assert model.untrained_weights == ["classifier.bias", "classifier.weight"]
    assert load_model(encoder_only).untrained_weights == []  # what the checkpoint is: nothing missing
    with pytest.warns(UserWarning):
        manifest = export_model(encoder_only, "text-classification", "onnx", tmp_path / "cls", ExportOptions(seq_len=16))
    assert manifest.untrained_weights == ["classifier.bias", "classifier.weight"]
    assert json.loads((tmp_path / "cls" / "manifest.json").read_text())["untrained_weights"] == manifest.untrained_weights


def test_export_and_run_say_it_after_the_work_and_refuse_it_when_asked(encoder_only, tmp_path, cli_env):
    done = pocketbert("export", encoder_only, "--task", "text-classification", "--format", "onnx", "--seq-len", "16",
                      "-o", tmp_path / "cls", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "WARNING: the text-classification head is untrained (classifier.bias, classifier.weight" in done.stderr
    refused = pocketbert("export", encoder_only, "--task", "text-classification", "--format", "onnx", "--seq-len", "16",
                         "-o", tmp_path / "refused", "--require-trained-head", env=cli_env)
    assert_one_line_error(refused, "head is untrained", "--require-trained-head")
    assert not (tmp_path / "refused").exists()
    for model in (encoder_only, tmp_path / "cls"):  # the checkpoint, and the artifact's manifest
        ran = pocketbert("run", "--task", "text-classification", "--model", model, "a sentence", env=cli_env)
        assert ran.returncode == 0, ran.stderr
        assert ran.stderr.strip().splitlines()[-1].startswith("pocketbert: WARNING: the text-classification head")
        strict = pocketbert("run", "--task", "text-classification", "--model", model, "a sentence",
                            "--require-trained-head", env=cli_env)
        assert_one_line_error(strict, "head is untrained")
        assert strict.stdout == ""
    trained = pocketbert("run", "--task", "feature-extraction", "--model", encoder_only, "--require-trained-head", "hi",
                         env=cli_env)
    assert trained.returncode == 0 and "WARNING" not in trained.stderr, trained.stderr


def test_a_vocabulary_larger_than_the_model_is_refused_at_load(tmp_path, cli_env):
    model = fake_model("bert", "sentence-embedding")
    model.save_pretrained(tmp_path)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(model.config.vocab_size + 20)]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    with pytest.raises(TokenizerError, match=f"vocab_size is {model.config.vocab_size}"):
        load_tokenizer(tmp_path)
    done = pocketbert("run", "--task", "sentence-embedding", "--model", tmp_path, "word1030 word3", env=cli_env)
    assert_one_line_error(done, "the tokenizer has ids up to", "another model")
