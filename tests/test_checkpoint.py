"""Checkpoint loading: strict about the backbone, lenient about heads as transformers is,
clear one-line errors about everything else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
from helpers import fake_model, hf_class, hf_config, inputs_for, perturb, quiet
from safetensors.torch import load_file, save_file

from pocketbert.errors import CheckpointError, ConfigError, PocketbertError
from pocketbert.models import create_checkpoint, load_model, registry
from pocketbert.models.checkpoint import CheckpointWarning


def save_ours(tmp_path, arch="mobilebert", task="fill-mask", name="ckpt", **changes):
    model = fake_model(arch, task, **changes)
    path = tmp_path / name
    model.save_pretrained(path)
    return model.eval(), path


def rewrite_weights(path, edit):
    tensors = load_file(path / "model.safetensors")
    edit(tensors)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


def outputs_equal(a, b, inputs):
    with torch.no_grad():
        x, y = a(**inputs), b(**inputs)
    return all(torch.equal(x[k], y[k]) for k in x)


# ---- the factory ----------------------------------------------------------------------------
@pytest.mark.unit
def test_factory_picks_the_class_config_json_names(tmp_path):
    model, path = save_ours(tmp_path, "squeezebert", "token-classification")
    loaded = load_model(path)
    assert type(loaded).__name__ == "SqueezeBertForTokenClassification"
    assert outputs_equal(model, loaded, inputs_for(model))


@pytest.mark.unit
def test_factory_without_architectures_gives_the_bare_model(tmp_path):
    _, path = save_ours(tmp_path, "bert", "feature-extraction")
    config = json.loads((path / "config.json").read_text())
    del config["architectures"]
    (path / "config.json").write_text(json.dumps(config))
    assert type(load_model(path)).__name__ == "BertModel"


@pytest.mark.unit
def test_unknown_task_for_an_architecture(tmp_path):
    _, path = save_ours(tmp_path, "distilbert", "fill-mask")
    with pytest.raises(PocketbertError, match="distilbert has no task 'pretraining'"):
        load_model(path, task="pretraining")


# ---- heads: what transformers initialises fresh or drops ---------------------------------
@pytest.mark.unit
def test_bare_checkpoint_into_a_head_warns_and_initialises_the_head(tmp_path):
    base, path = save_ours(tmp_path, "mobilebert", "feature-extraction")
    with pytest.warns(CheckpointWarning, match=r"newly initialised: classifier\.bias"):
        model = load_model(path, task="text-classification")
    torch.testing.assert_close(
        model.mobilebert.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight
    )


@pytest.mark.unit
def test_head_checkpoint_into_bare_model_drops_the_head_with_a_warning(tmp_path):
    full, path = save_ours(tmp_path, "mobilebert", "pretraining")
    with pytest.warns(CheckpointWarning, match=r"does not use .*cls\.predictions"):
        bare = load_model(path, task="feature-extraction")
    inputs = inputs_for(bare)
    with torch.no_grad():
        torch.testing.assert_close(bare(**inputs).pooler_output, full.mobilebert(**inputs).pooler_output)


@pytest.mark.unit
def test_pretraining_checkpoint_as_masked_lm_keeps_the_mlm_head(tmp_path):
    full, path = save_ours(tmp_path, "mobilebert", "pretraining")
    with pytest.warns(CheckpointWarning, match=r"seq_relationship"):
        mlm = load_model(path, task="fill-mask")
    inputs = inputs_for(mlm)
    with torch.no_grad():
        torch.testing.assert_close(mlm(**inputs).logits, full(**inputs).prediction_logits)


@pytest.mark.unit
def test_transformers_pretraining_checkpoint_into_bare_model(tmp_path):
    """bert-base-uncased style: a BertForMaskedLM checkpoint (with pooler) read by BertModel."""
    config = registry.get_architecture("bert").fake_config()
    theirs = perturb(hf_class(registry.get_architecture("bert").model_class("fill-mask"))(hf_config(config))).eval()
    with quiet():
        theirs.save_pretrained(tmp_path)
    with pytest.warns(CheckpointWarning):
        ours = load_model(tmp_path, task="feature-extraction")
    inputs = inputs_for(ours)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(**inputs).last_hidden_state, theirs.bert(**inputs).last_hidden_state, atol=1e-5, rtol=0
        )


# ---- legacy files ----------------------------------------------------------------------------
@pytest.mark.unit
def test_legacy_names_buffers_and_tied_aliases_load(tmp_path):
    """TF-era gamma/beta names, saved position_ids buffers and saved tied decoder weights
    (google/mobilebert-uncased and bert-base-uncased look like this) load unchanged."""
    model, path = save_ours(tmp_path, "mobilebert", "pretraining", normalization_type="layer_norm")

    def legacy(t):
        for key in [k for k in t if k.endswith("LayerNorm.weight")]:
            t[key[: -len("weight")] + "gamma"] = t.pop(key)
        for key in [k for k in t if k.endswith("LayerNorm.bias")]:
            t[key[: -len("bias")] + "beta"] = t.pop(key)
        t["mobilebert.embeddings.position_ids"] = torch.arange(128)[None]
        t["cls.predictions.decoder.weight"] = t["mobilebert.embeddings.word_embeddings.weight"].clone()
        t["cls.predictions.decoder.bias"] = t["cls.predictions.bias"].clone()

    rewrite_weights(path, legacy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        loaded = load_model(path)
    assert outputs_equal(model, loaded, inputs_for(model))


@pytest.mark.unit
def test_pytorch_bin_loads_with_weights_only(tmp_path):
    model, path = save_ours(tmp_path, "distilbert", "text-classification")
    torch.save(load_file(path / "model.safetensors"), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    assert outputs_equal(model, load_model(path), inputs_for(model))


@pytest.mark.unit
def test_pickled_code_in_a_bin_is_refused(tmp_path):
    _, path = save_ours(tmp_path, "distilbert", "text-classification")
    (path / "model.safetensors").unlink()
    torch.save({"weights": {"a": torch.zeros(1)}, "hook": ValueError("pickled object")}, path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: holds objects other than tensors: it pickles "
                                              r"\w+\.ValueError; pocketbert loads weights only") as caught:
        load_model(path)
    assert "weights_only" not in str(caught.value)  # not torch's advice to load it unsafely


@pytest.mark.unit
def test_sharded_safetensors_load(tmp_path):
    model, path = save_ours(tmp_path, "bert", "question-answering")
    tensors = load_file(path / "model.safetensors")
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, shard_keys in shards.items():
        save_file({k: tensors[k] for k in shard_keys}, path / name, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: n for n, ks in shards.items() for k in ks}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    (path / "model.safetensors").unlink()
    assert outputs_equal(model, load_model(path), inputs_for(model))


# ---- bad input: one line, naming the file or key ---------------------------------------------
@pytest.mark.parametrize(
    "damage,error,message",
    [
        (lambda p: (p / "config.json").unlink(), ConfigError, r"config\.json: no config\.json"),
        (lambda p: (p / "config.json").write_text("{not json"), ConfigError, r"not valid JSON"),
        (
            lambda p: (p / "config.json").write_text(json.dumps({"model_type": "roberta"})),
            ConfigError,
            r"unknown model_type 'roberta'",
        ),
        (lambda p: (p / "model.safetensors").unlink(), CheckpointError, r"no model\.safetensors or pytorch_model\.bin"),
        (
            lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:5000]),
            CheckpointError,
            r"model\.safetensors: not a readable safetensors file",
        ),
        (
            lambda p: rewrite_weights(p, lambda t: t.pop("mobilebert.encoder.layer.1.attention.self.key.weight")),
            CheckpointError,
            r"missing weight mobilebert\.encoder\.layer\.1\.attention\.self\.key\.weight$",
        ),
        (
            lambda p: rewrite_weights(p, lambda t: t.update({"mobilebert.encoder.layer.7.output.dense.weight": torch.zeros(1)})),
            CheckpointError,
            r"unexpected weight mobilebert\.encoder\.layer\.7\.output\.dense\.weight",
        ),
        (
            lambda p: rewrite_weights(p, lambda t: t.update({"cls.predictions.bias": torch.zeros(7)})),
            CheckpointError,
            r"weight cls\.predictions\.bias has shape \(7,\), MobileBertForMaskedLM expects \(1000,\)",
        ),
    ],
    ids=["no-config", "bad-json", "unknown-model-type", "no-weights", "truncated", "missing-key", "unexpected-key", "shape"],
)
@pytest.mark.unit
def test_bad_checkpoints_raise_one_line_errors(tmp_path, damage, error, message):
    _, path = save_ours(tmp_path)
    damage(path)
    with pytest.raises(error, match=message) as info:
        load_model(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.unit
def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        load_model(tmp_path / "nowhere")


@pytest.mark.unit
def test_a_file_is_not_a_checkpoint(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\0")
    with pytest.raises(CheckpointError, match="not a directory"):
        load_model(tmp_path / "model.onnx")


# ---- hub ids through huggingface_hub's cache ----------------------------------------------
def build_hub_cache(cache, repo_id, source_dir, revision="0123456789abcdef0123456789abcdef01234567"):
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/...}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    shutil.copytree(source_dir, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.mark.integration
def test_hub_id_resolves_offline_from_the_cache(tmp_path, cli_env):
    model, path = save_ours(tmp_path, "squeezebert", "text-classification")
    cache = tmp_path / "hub"
    build_hub_cache(cache, "squeezebert/squeezebert-tiny", path)
    env = {**cli_env, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    script = (
        "import sys, torch\n"
        "from pocketbert.models import load_model\n"
        "m = load_model('squeezebert/squeezebert-tiny')\n"
        "torch.manual_seed(0)\n"
        "ids = torch.randint(1, 1000, (2, 9))\n"
        "print(type(m).__name__, m(ids).logits.sum().item())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    torch.manual_seed(0)
    ids = torch.randint(1, 1000, (2, 9))
    with torch.no_grad():
        expected = model(ids).logits.sum().item()
    name, value = done.stdout.split()
    assert name == "SqueezeBertForSequenceClassification"
    assert float(value) == pytest.approx(expected, abs=1e-5)

    missing = subprocess.run(
        [sys.executable, "-m", "pocketbert.cli", "info", "squeezebert/not-cached"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "squeezebert/not-cached" in missing.stderr


# ---- pocketbert create --------------------------------------------------------------------------
@pytest.mark.unit
def test_create_is_deterministic_per_seed(tmp_path):
    create_checkpoint("distilbert", tmp_path / "a", layers=1, seed=7)
    create_checkpoint("distilbert", tmp_path / "b", layers=1, seed=7)
    create_checkpoint("distilbert", tmp_path / "c", layers=1, seed=8)
    a, b, c = (load_file(tmp_path / n / "model.safetensors") for n in "abc")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["distilbert.transformer.layer.0.ffn.lin1.weight"], c["distilbert.transformer.layer.0.ffn.lin1.weight"])


@pytest.mark.unit
def test_created_checkpoint_loads_into_transformers(tmp_path):
    model = create_checkpoint("mobilebert", tmp_path / "m", task="question-answering", layers=2, seed=1)
    with quiet():
        theirs, info = hf_class(type(model)).from_pretrained(tmp_path / "m", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert theirs.config.num_hidden_layers == 2 and theirs.config.hidden_size == 512


@pytest.mark.unit
def test_create_refuses_to_overwrite_and_leaves_nothing_on_failure(tmp_path):
    create_checkpoint("bert", tmp_path / "m", layers=1)
    before = (tmp_path / "m" / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(PocketbertError, match="already exists"):
        create_checkpoint("bert", tmp_path / "m", layers=1)
    assert (tmp_path / "m" / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(PocketbertError, match="layers must be >= 1"):
        create_checkpoint("bert", tmp_path / "n", layers=0)
    with pytest.raises(PocketbertError, match="has no task"):
        create_checkpoint("bert", tmp_path / "o", task="multiple-choice", layers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.unit
def test_create_with_a_users_vocab_uses_it_as_is(tmp_path):
    from pocketbert.models.tokenizer import load_tokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "capital", "of", "france", "is", "paris", "."]
    words += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    model = create_checkpoint("distilbert", tmp_path / "m", layers=1, vocab_file=tmp_path / "vocab.txt")
    assert model.config.vocab_size == len(words)
    assert (tmp_path / "m" / "vocab.txt").read_text() == (tmp_path / "vocab.txt").read_text()
    tokenizer = load_tokenizer(tmp_path / "m")
    assert tokenizer("The capital of France is [MASK].")["input_ids"] == [2, 5, 6, 7, 8, 9, 4, 11, 3]
