"""TFLite exports through litert-torch: every architecture (every head on MobileBERT), builtin ops only,
named int32 signature, XNNPACK coverage in the manifest, same answers as PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import fake_model

from pocketbert.formats import RunnerError, TorchRunner, open_runner
from pocketbert.export import ExportOptions, export_model
from pocketbert.contracts.spec import ExportSpec, random_inputs
from pocketbert.quality.validate import compare
from pocketbert.models import create_checkpoint, load_model, registry
from pocketbert.pipelines import pipeline

SEQ = 32
# every head on MobileBERT (the paper's model for phones); the other architectures' encoders
# under a prediction head with its tied decoder, a per-token head and a sequence classifier
# (pooler, or DistilBERT's pre-classifier and ReLU): their other heads put on top what these
# have (a Linear per token, the choices' reshape, the mean pooling), and those 10 more
# conversions cost CI most of a minute
CONVERTED = [(arch, task) for arch, task in registry.all_pairs()
             if arch == "mobilebert" or task in ("fill-mask", "question-answering", "text-classification")]


@pytest.fixture(scope="module")
def conversions(tmp_path_factory):
    """Convert each pair of CONVERTED once: conversion is the slow part."""
    root = tmp_path_factory.mktemp("tflite")
    done = {}
    for arch, task in CONVERTED:
        source = root / f"{arch}-{task}-ckpt"
        fake_model(arch, task, seed=2).save_pretrained(source)
        out = root / f"{arch}-{task}"
        done[arch, task] = (source, out, export_model(source, None, "tflite", out, ExportOptions(seq_len=SEQ)))
    return done


@pytest.mark.parametrize("arch,task", CONVERTED)
@pytest.mark.integration
def test_every_architecture_and_head_converts_with_builtin_ops(arch, task, conversions):
    source, out, manifest = conversions[arch, task]
    model = load_model(source)
    details = manifest.details
    assert details["builtin_ops_only"] and not details["non_builtin_ops"]
    assert sum(details["op_histogram"].values()) == details["xnnpack"]["of"]
    assert details["xnnpack"]["nodes"] >= 0.9 * details["xnnpack"]["of"], details["xnnpack"]
    signature = details["signatures"]["serving_default"]
    assert sorted(signature["inputs"]) == sorted(model.input_names)  # real names, not args_0
    assert sorted(signature["outputs"]) == sorted(model.output_names)
    assert all(i.dtype == "int32" and isinstance(i.shape[-1], int) for i in manifest.inputs)
    assert manifest.files["model"].validation["max_abs_diff"] <= 1e-4
    # any valid inputs, not only the validation case: other lengths of padding, other ids
    runner, reference = open_runner(out), TorchRunner(model)
    spec = ExportSpec.for_model(model, batch=1, sequence=SEQ, static=True)
    for seed in range(3):
        inputs = random_inputs(spec, model.config.vocab_size, spec.sizes(), seed=50 + seed)
        inputs["attention_mask"][..., SEQ - 5 * seed - 3 :] = 0
        compare(reference(inputs), runner(inputs), model.output_names, 1e-4, f"seed {seed}")


@pytest.mark.integration
def test_static_runner_refuses_other_shapes(conversions):
    _, out, _ = conversions["bert", "question-answering"]
    runner = open_runner(out)
    with pytest.raises(RunnerError, match=r"takes exactly \(1, 32\)"):
        runner({name: np.ones((1, 40), np.int64) for name in runner.input_names})


@pytest.mark.integration
def test_fill_mask_on_tflite_matches_the_checkpoint(tmp_path):
    source = tmp_path / "m"
    create_checkpoint("mobilebert", source, layers=2, seed=3)
    export_model(source, "fill-mask", "tflite", tmp_path / "t")
    text = ["The capital of France is [MASK].", "A [MASK] walked into the [MASK]."]
    expected, got = pipeline("fill-mask", source)(text), pipeline("fill-mask", tmp_path / "t")(text)

    def rows(result):
        return [result] if isinstance(result, dict) else [r for item in result for r in rows(item)]

    assert len(rows(got)) == len(rows(expected)) == 15
    from pocketbert.formats.tflite.export import read_metadata

    embedded = read_metadata(tmp_path / "t" / "model.tflite")
    assert embedded["pocketbert.vocab.txt"] == (source / "vocab.txt").read_bytes()
    described = json.loads(embedded["pocketbert.signature.json"])
    assert [i["name"] for i in described["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert described["inputs"][0]["shape"] == [1, 128] and described["outputs"][0]["name"] == "logits"
    for g, e in zip(rows(got), rows(expected)):
        assert g["token"] == e["token"] and g["sequence"] == e["sequence"]
        assert abs(g["score"] - e["score"]) <= 1e-4


# MobileBERT, the paper's model for phones, at its full size (24 layers, bottlenecks, four
# FFNs); every architecture's paper size exports to ONNX and TorchScript in test_export, and
# every architecture's graph converts here at 2 layers: the other three at paper size cost CI
# 2-3 minutes for the same ops at other widths
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mobilebert"])
def test_paper_size_models_convert(arch, tmp_path):
    source = tmp_path / "ckpt"
    create_checkpoint(arch, source, task="fill-mask", seed=0)
    manifest = export_model(source, "fill-mask", "tflite", tmp_path / "t")
    entry, details = manifest.files["model"], manifest.details
    print(f"{arch} tflite: convert {manifest.export_seconds} s, {entry.bytes / 1e6:.1f} MB, "
          f"max abs diff {entry.validation['max_abs_diff']:.2e}, xnnpack {details['xnnpack']}, ops {details['op_histogram']}")
    assert details["builtin_ops_only"] and entry.validation["passed"]


@pytest.mark.integration
def test_android_assets_puts_everything_the_demo_loads(tmp_path, cli_env):
    import subprocess
    import sys

    source = tmp_path / "ckpt"
    create_checkpoint("distilbert", source, task="text-classification", layers=1, seed=4)
    export_model(source, None, "tflite", tmp_path / "tflite", ExportOptions(seq_len=SEQ))
    export_model(source, None, "torchscript", tmp_path / "ts")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pocketbert.cli", *map(str, args)], capture_output=True,
                              text=True, env=cli_env)

    done = cli("android-assets", tmp_path / "tflite", tmp_path / "assets")
    assert done.returncode == 0, done.stderr
    assets = tmp_path / "assets"
    assert sorted(p.name for p in assets.iterdir()) == [
        "config.json", "labels.txt", "manifest.json", "model.tflite", "vocab.txt"]
    assert (assets / "labels.txt").read_text().splitlines() == ["LABEL_0", "LABEL_1"]
    assert (assets / "model.tflite").read_bytes() == (tmp_path / "tflite" / "model.tflite").read_bytes()
    assert json.loads((assets / "manifest.json").read_text())["inputs"][0]["shape"] == [1, SEQ]
    wrong = cli("android-assets", tmp_path / "ts", tmp_path / "assets2")
    assert wrong.returncode == 2 and "a torchscript export; the Android demo runs .tflite" in wrong.stderr
    assert not (tmp_path / "assets2").exists()
