"""The sentence-embedding task on tiny models: sentence-transformers' pooling is the oracle
(its Pooling and Normalize modules on transformers' encoder with the same weights), its
files are read and written as it reads and writes them, and every format exports the
pooled vector. The real checkpoint is in test_real_sentence_embedding.py."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from helpers import fake_model, hf, random_inputs

from pocketbert.errors import CheckpointError
from pocketbert.models import load_model, registry
from pocketbert.models.sentence_embedding import (
    POOLING_MODES,
    SentenceEmbeddingSettings,
    SentencePooling,
    read_settings,
    settings_files,
)

ARCHS = list(registry.ARCHITECTURES)


def st_modules():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the import path moved in sentence-transformers 5
        from sentence_transformers.models import Normalize, Pooling
    return Pooling, Normalize


def oracle(model, directory, inputs: dict, modes: tuple[str, ...], normalize: bool) -> torch.Tensor:
    """sentence-transformers' Pooling (+ Normalize) over transformers' bare encoder of the
    checkpoint ``model`` was saved to."""
    Pooling, Normalize = st_modules()
    encoder = hf().AutoModel.from_pretrained(directory).eval()
    with torch.no_grad():
        tokens = encoder(**inputs).last_hidden_state
        features = {"token_embeddings": tokens, "attention_mask": inputs["attention_mask"]}
        features = Pooling(model.config.hidden_size, pooling_mode=modes)(features)
        if normalize:
            features = Normalize()(features)
    return features["sentence_embedding"]


def with_settings(model, settings: SentenceEmbeddingSettings):
    model.pooling = SentencePooling(settings)
    return model


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.unit
def test_mean_pooling_and_normalisation_equal_sentence_transformers(arch, tmp_path):
    model = with_settings(fake_model(arch, "sentence-embedding"), SentenceEmbeddingSettings(("mean",), normalize=True))
    model.save_pretrained(tmp_path)
    inputs = random_inputs(model, batch=3, seq=13)  # right-padded, lengths 13, 9, 2
    with torch.no_grad():
        ours = model(**inputs).sentence_embedding
    theirs = oracle(model, tmp_path, inputs, ("mean",), normalize=True)
    assert ours.shape == (3, model.config.hidden_size)
    assert float((ours - theirs).abs().max()) < 1e-5
    assert torch.allclose(ours.norm(dim=-1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("modes", [(mode,) for mode in POOLING_MODES] + [("cls", "max", "mean")],
                         ids=lambda modes: "+".join(modes))
@pytest.mark.unit
def test_every_pooling_mode_equals_sentence_transformers(modes, tmp_path):
    model = with_settings(fake_model("bert", "sentence-embedding"), SentenceEmbeddingSettings(modes))
    model.save_pretrained(tmp_path)
    inputs = random_inputs(model, batch=3, seq=11)
    with torch.no_grad():
        ours = model(**inputs).sentence_embedding
    theirs = oracle(model, tmp_path, inputs, modes, normalize=False)
    assert ours.shape == (3, model.config.hidden_size * len(modes)) == theirs.shape
    assert float((ours - theirs).abs().max()) < 1e-5


@pytest.mark.unit
def test_settings_are_read_from_both_spellings_of_the_pooling_file(tmp_path):
    (tmp_path / "1_Pooling").mkdir()
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    legacy = {"word_embedding_dimension": 8, "pooling_mode_cls_token": True, "pooling_mode_max_tokens": True}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(legacy))
    assert read_settings(tmp_path) == SentenceEmbeddingSettings(("cls", "max"))
    current = {"embedding_dimension": 8, "pooling_mode": ["max", "cls"]}  # sentence-transformers >= 5
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(current))
    assert read_settings(tmp_path).pooling == ("cls", "max")  # its concatenation order, not the file's
    modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                    "type": "sentence_transformers.sentence_transformer.modules.Normalize"})
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 200}))
    found = read_settings(tmp_path)
    assert found.normalize and found.max_seq_length == 200 and found.from_files
    assert read_settings(tmp_path / "1_Pooling") == SentenceEmbeddingSettings()  # no modules.json: mean


@pytest.mark.parametrize("case,message", [
    ("dense", "Dense"),
    ("prompt", "include_prompt"),
    ("mode", "unknown pooling mode"),
    ("json", "not valid JSON"),
])
@pytest.mark.unit
def test_modules_pocketbert_cannot_reproduce_are_refused(case, message, tmp_path):
    (tmp_path / "1_Pooling").mkdir()
    modules = [{"type": "sentence_transformers.models.Transformer", "path": ""},
               {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}]
    pooling = {"pooling_mode_mean_tokens": True}
    if case == "dense":
        modules.append({"type": "sentence_transformers.models.Dense", "path": "2_Dense"})
    if case == "prompt":
        pooling["include_prompt"] = False
    if case == "mode":
        pooling = {"pooling_mode": "median"}
    (tmp_path / "modules.json").write_text("[not json" if case == "json" else json.dumps(modules))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(CheckpointError, match=message):
        read_settings(tmp_path)


@pytest.mark.unit
def test_save_and_load_keep_the_pooling_and_drop_the_unused_pooler_quietly(tmp_path):
    bare = fake_model("bert", "feature-extraction")  # has pooler weights, as MiniLM's checkpoint does
    bare.save_pretrained(tmp_path / "bare")
    settings = SentenceEmbeddingSettings(("cls", "mean"), normalize=True, max_seq_length=64)
    for name, text in settings_files(settings, bare.config.hidden_size).items():
        (tmp_path / "bare" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "bare" / name).write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "another head" warning for the pooler
        model = load_model(tmp_path / "bare", task="sentence-embedding")
    assert model.settings == settings and model.untrained_weights == []
    model.save_pretrained(tmp_path / "again")
    assert read_settings(tmp_path / "again") == settings
    assert load_model(tmp_path / "again").task == "sentence-embedding"  # config.json names the class
    inputs = random_inputs(model, batch=2, seq=9)
    with torch.no_grad():
        expected = bare(**inputs).last_hidden_state
        got = model(**inputs).sentence_embedding
    pooled = torch.cat([expected[:, 0], (expected * inputs["attention_mask"][..., None]).sum(1)
                        / inputs["attention_mask"].sum(1, keepdim=True)], -1)
    assert torch.allclose(got, torch.nn.functional.normalize(pooled, dim=-1), atol=1e-5)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "tflite"])
@pytest.mark.integration
def test_pipelines_on_exports_give_the_checkpoints_vectors(fmt, tmp_path):
    from pocketbert.export import ExportOptions, export_model
    from pocketbert.models import create_checkpoint
    from pocketbert.pipelines import pipeline

    create_checkpoint("distilbert", tmp_path / "ckpt", task="sentence-embedding", layers=1)
    export_model(tmp_path / "ckpt", None, fmt, tmp_path / fmt, ExportOptions(seq_len=32))
    assert (tmp_path / fmt / "modules.json").is_file() and (tmp_path / fmt / "1_Pooling" / "config.json").is_file()
    texts = ["a short one", "a somewhat longer sentence about the weather and the sea", "third"]
    expected = np.array(pipeline("sentence-embedding", tmp_path / "ckpt")(texts))
    got = np.array(pipeline("sentence-embedding", tmp_path / fmt)(texts))  # batched, or one by one (tflite)
    assert expected.shape == got.shape == (3, 768)
    assert np.abs(expected - got).max() < 1e-4


@pytest.mark.integration
def test_run_prints_vectors_and_similarities(tmp_path, cli_env):
    from pocketbert.models import create_checkpoint

    create_checkpoint("bert", tmp_path / "ckpt", task="sentence-embedding", layers=1)
    cli = [sys.executable, "-m", "pocketbert.cli", "run", "--task", "sentence-embedding", "--model", str(tmp_path / "ckpt")]
    texts = ["the cat sat on the mat", "a cat was sitting on a mat", "stock markets fell sharply"]
    vectors = subprocess.run([*cli, "--json", *texts], capture_output=True, text=True, env=cli_env)
    assert vectors.returncode == 0, vectors.stderr
    rows = [json.loads(line) for line in vectors.stdout.splitlines()]
    assert [row["input"] for row in rows] == texts and all(len(row["result"]) == 768 for row in rows)
    similar = subprocess.run([*cli, "--json", "--similarity", "--top-k", "2", *texts], capture_output=True, text=True,
                             env=cli_env)
    assert similar.returncode == 0, similar.stderr
    rows = [json.loads(line) for line in similar.stdout.splitlines()]
    unit = np.array([v["result"] for v in map(json.loads, vectors.stdout.splitlines())])
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert np.allclose([row["similarity"] for row in rows], unit @ unit.T, atol=1e-5)
    assert [len(row["nearest"]) for row in rows] == [2, 2, 2] and all(r["nearest"][0]["index"] != i for i, r in enumerate(rows))
    for bad, message in [(["--similarity", "only one"], "at least two"), (["--top-k", "0", "a", "b"], "--top-k")]:
        result = subprocess.run([*cli, *bad], capture_output=True, text=True, env=cli_env)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.integration
def test_the_sweep_takes_the_task(tmp_path, cli_env, cli_eval_text):
    from pocketbert.models import create_checkpoint

    create_checkpoint("bert", tmp_path / "ckpt", task="feature-extraction", layers=1)  # as sentence-transformers ship
    cli = [sys.executable, "-m", "pocketbert.cli", "quantize-sweep", str(tmp_path / "ckpt"), "--task", "sentence-embedding",
           "--formats", "onnx", "--recipes", "onnx-dynamic-int8", "--seq-len", "32", "--runs", "2",
           "--eval-text", str(cli_eval_text)]
    done = subprocess.run([*cli, "-o", str(tmp_path / "sweep")], capture_output=True, text=True, env=cli_env)
    assert done.returncode == 0, done.stderr
    rows = {r["recipe"]: r for r in json.loads((tmp_path / "sweep" / "sweep.json").read_text())["rows"]}
    assert set(rows) == {"float32", "onnx-dynamic-int8"}
    assert 0 < rows["onnx-dynamic-int8"]["real_text_agreement"] <= 1  # nearest-neighbour retention of the vectors
    (tmp_path / "labels.tsv").write_text("text\tlabel\na fine day\tpositive\n")
    refused = subprocess.run([*cli, "--eval-data", str(tmp_path / "labels.tsv"), "-o", str(tmp_path / "no")],
                             capture_output=True, text=True, env=cli_env)
    assert refused.returncode == 2 and "not for --task sentence-embedding" in refused.stderr
    assert not (tmp_path / "no").exists()
