"""ExecuTorch exports (.pte, XNNPACK): every architecture validates against PyTorch, XNNPACK
takes everything but the few ops it has no kernel for, the runner honours threads and
fails in one line, int8 recipes keep accuracy (DistilBERT: the spike's IndexError), and the
harness and the sweep take .pte files like any other."""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import fake_checkpoint, fake_model

from pocketbert.formats import RunnerError, TorchRunner, open_runner, runner_for_file
from pocketbert.errors import PocketbertError
from pocketbert.export import ExportOptions, export_model
from pocketbert.contracts.artifact import Artifact
from pocketbert.contracts.spec import ExportSpec, random_inputs
from pocketbert.quality.validate import compare
from pocketbert.models import load_model, registry
from pocketbert.models.vocab import build_vocab
from pocketbert.pipelines import pipeline
from pocketbert.quantize import quantize_model
from pocketbert.quantize.synthetic_task import LABELS, accuracy, fine_tune, make_examples

SEQ = 32
# one head per architecture, between them 2-D and 3-D inputs, 1 and 2 outputs, MLM heads
PAIRS = [("mobilebert", "fill-mask"), ("squeezebert", "question-answering"),
         ("distilbert", "multiple-choice"), ("bert", "text-classification")]
# ops XNNPACK has no kernel for here (layer norm, embedding, int64 ids and mask reshaped or
# cast); anything else left on the portable kernels is a regression
PORTABLE = {"embedding", "native_layer_norm", "unsqueeze_copy", "view_copy", "dim_order_ops._to_dim_order_copy",
            "select_copy.int", "slice_copy.Tensor"}
RECIPES = ["executorch-dynamic-int8", "executorch-static-int8"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("executorch")
    done = {}
    for arch, task in PAIRS:
        source = root / f"{arch}-ckpt"
        fake_checkpoint(source, arch, task, seed=2)  # with a tokenizer: the dynamic recipe calibrates
        out = root / arch
        done[arch] = (source, out, export_model(source, None, "executorch", out, ExportOptions(seq_len=SEQ)))
    return done


@pytest.mark.parametrize("arch", [arch for arch, _ in PAIRS])
@pytest.mark.integration
def test_every_architecture_exports_validates_and_delegates(arch, exports):
    source, out, manifest = exports[arch]
    model = load_model(source)
    assert manifest.format == "executorch" and manifest.static
    assert all(i.dtype == "int64" and i.shape[-1] == SEQ for i in manifest.inputs)
    entry, xnnpack = manifest.files["model"], manifest.details["xnnpack"]
    assert entry.path == "model.pte" and entry.validation["max_abs_diff"] <= 1e-4
    assert set(xnnpack["not_delegated"]) <= PORTABLE, xnnpack["not_delegated"]  # no expand_copy, no mm
    assert xnnpack["nodes"] >= 0.85 * xnnpack["of"] and xnnpack["subgraphs"] >= 1
    assert sum(manifest.details["op_histogram"].values()) == xnnpack["of"]
    # any valid inputs, not only the validation case
    runner, reference = open_runner(out), TorchRunner(model)
    spec = ExportSpec.for_model(model, batch=1, sequence=SEQ, static=True)
    for seed in range(2):
        inputs = random_inputs(spec, model.config.vocab_size, spec.sizes(), seed=50 + seed)
        inputs["attention_mask"][..., SEQ - 5 * seed - 3 :] = 0
        compare(reference(inputs), runner(inputs), model.output_names, 1e-4, f"seed {seed}")


@pytest.mark.integration
def test_static_runner_refuses_other_shapes_and_truncated_files(exports, tmp_path):
    _, out, manifest = exports["bert"]
    runner = open_runner(out)
    assert runner.fixed_sequence_length == SEQ
    with pytest.raises(RunnerError, match=r"takes exactly \(1, 32\)"):
        runner({name: np.ones((1, 40), np.int64) for name in runner.input_names})
    data = (out / "model.pte").read_bytes()
    for size in (len(data) // 2, 10):
        (tmp_path / "model.pte").write_bytes(data[:size])
        with pytest.raises(RunnerError) as error:
            runner_for_file(tmp_path / "model.pte", manifest)
        assert "ExecuTorch cannot load it" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.integration
def test_threads_size_the_pool_only_while_no_program_is_open(exports):
    from pocketbert.formats.executorch.export import runtime

    _, out, _ = exports["distilbert"]
    gc.collect()
    first = open_runner(out, threads=1)
    assert first.threads == 1 == runtime()[1]._threadpool_get_thread_count()
    second = open_runner(out, threads=1)  # the same size: shared
    with pytest.raises(RunnerError, match="shared by the 2 program"):
        open_runner(out, threads=2)
    del first, second
    gc.collect()
    assert open_runner(out, threads=2).threads == 2


@pytest.mark.integration
def test_dynamic_export_validates_at_three_shapes(tmp_path):
    source = tmp_path / "ckpt"
    fake_model("distilbert", "token-classification", seed=3).save_pretrained(source)
    manifest = export_model(source, None, "executorch", tmp_path / "d", ExportOptions(seq_len=SEQ, dynamic=True))
    assert not manifest.static and manifest.inputs[0].shape == ["batch", "sequence"]
    assert len(manifest.files["model"].validation["cases"]) == 3
    assert manifest.details["dynamic_shapes"]["batch"] == [1, 8]
    runner = open_runner(tmp_path / "d")
    with pytest.raises(RunnerError, match="takes at most"):
        runner({name: np.ones((9, 16), np.int64) for name in runner.input_names})
    for bad, message in [(dict(fmt="tflite"), "tflite exports are always static"),
                         (dict(fmt="executorch", static=True), "--static and --dynamic exclude each other")]:
        with pytest.raises(PocketbertError, match=message):
            export_model(source, None, bad["fmt"], tmp_path / "x", ExportOptions(dynamic=True, static=bad.get("static", False)))
    assert not (tmp_path / "x").exists()


@pytest.mark.integration
def test_missing_executorch_says_how_to_install(exports, tmp_path, monkeypatch):
    source, out, manifest = exports["bert"]
    monkeypatch.setitem(sys.modules, "executorch", None)  # import executorch -> ImportError
    message = re.escape("executorch is not installed: pip install 'pocketbert[executorch]'")
    with pytest.raises(PocketbertError, match=message):
        export_model(source, None, "executorch", tmp_path / "e")
    with pytest.raises(PocketbertError, match=message):
        quantize_model(source, "executorch-dynamic-int8", tmp_path / "q")
    with pytest.raises(PocketbertError, match=message):
        open_runner(out)
    assert not (tmp_path / "e").exists() and not (tmp_path / "q").exists()
    # the rest of pocketbert does not need it
    export_model(source, None, "onnx", tmp_path / "onnx", ExportOptions(seq_len=SEQ))


@pytest.mark.integration
def test_quantizer_keeps_integer_scalars_integer():
    """The spike's IndexError: XNNPACKQuantizer's transform lifts the 0 of an int64
    ``arange(n) + 0`` (transformers' mask/position code) to a float32 buffer, so the index
    becomes float. Our quantizer lifts it in the node's dtype (upstream #22062 / #22065)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from pocketbert.formats.executorch.quantize import quantizer_for
    from pocketbert.quantize.recipes import RECIPES

    class Indexed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, input_ids, attention_mask):
            return self.fc(input_ids.float())[:, torch.arange(4) + 0] * attention_mask

    example = (torch.ones(2, 4, dtype=torch.long), torch.ones(2, 4))
    graph = torch.export.export(Indexed().eval(), example).module()
    with pytest.raises(IndexError, match="tensors used as indices"):  # executorch 1.5.1: still broken upstream
        prepare_pt2e(torch.export.export(Indexed().eval(), example).module(), XNNPACKQuantizer())(*example)
    quantizer, _, _ = quantizer_for(RECIPES["executorch-dynamic-int8"], graph, ("input_ids", "attention_mask"), [])
    prepared = prepare_pt2e(graph, quantizer)
    assert prepared(*example).shape == (2, 4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny DistilBERT fine-tuned on the synthetic task (fp32 >= 95%), with its tokenizer."""
    spec = registry.get_architecture("distilbert")
    vocab = build_vocab(30522)
    tokenizer = spec.tokenizer_class({t: i for i, t in enumerate(vocab)}, model_max_length=SEQ)
    config = spec.fake_config(vocab_size=len(vocab), max_position_embeddings=64).with_labels(2)
    config = config.replace(id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    model = spec.model_class("text-classification")(config).init_weights(0)
    fine_tune(model, tokenizer, make_examples(2000, seed=1), seq_len=SEQ)
    source = tmp_path_factory.mktemp("trained") / "distilbert"
    model.save_pretrained(source)
    tokenizer.save_pretrained(source)
    return source


@pytest.mark.integration
def test_pipeline_on_the_pte_matches_the_checkpoint(trained, tmp_path):
    export_model(trained, None, "executorch", tmp_path / "pte", ExportOptions(seq_len=SEQ))
    texts = ["the garden was lovely and calm.", "what a noisy city, so dirty!"]
    expected, got = pipeline("text-classification", trained)(texts), pipeline("text-classification", tmp_path / "pte")(texts)
    for e, g in zip(expected, got):
        assert e[0]["label"] == g[0]["label"] and abs(e[0]["score"] - g[0]["score"]) <= 1e-4


@pytest.mark.integration
def test_int8_recipes_keep_accuracy_on_distilbert(trained, tmp_path, monkeypatch):
    """DistilBERT dynamic int8 is what failed with the IndexError in the spike. Static int8
    keeps accuracy because the mask path stays float: quantized too, it falls to chance."""
    import dataclasses

    from pocketbert.quantize.recipes import RECIPES as REGISTRY

    held_out = make_examples(300, seed=99)
    fp32 = accuracy(pipeline("text-classification", trained), held_out)
    assert fp32 >= 0.95
    everything = dataclasses.replace(REGISTRY["executorch-static-int8"], name="static-int8-mask-too", float_softmax=False)
    monkeypatch.setitem(REGISTRY, everything.name, everything)
    quantize_model(trained, everything.name, tmp_path / "all", seq_len=SEQ, keep_below_floor=True)  # refused otherwise
    collapsed = accuracy(pipeline("text-classification", tmp_path / "all"), held_out)
    assert collapsed < 0.7, collapsed
    for name in RECIPES:
        manifest = quantize_model(trained, name, tmp_path / name, seq_len=SEQ)
        assert manifest.quantization["name"] == name and manifest.quantization["method"] == REGISTRY[name].method
        assert (manifest.quantization["calibration"] is not None) == REGISTRY[name].needs_calibration
        assert json.loads((tmp_path / name / "manifest.json").read_text())["quantization"]["name"] == name
        assert all(entry.bytes < entry.float_bytes for entry in manifest.files.values())
        details = manifest.quantization["details"]
        ffn_outputs = 2 if REGISTRY[name].float_outliers else 0  # one per layer kept float
        assert details["quantized_layers"] == {"int8": 2 * 6 + 2 - ffn_outputs, "float": ffn_outputs}
        assert set(details["xnnpack"]["not_delegated"]) <= PORTABLE, details["xnnpack"]
        assert bool(details["kept_float"]["mask"]) == (name == "executorch-static-int8")
        # static: each layer's two residual adds into a LayerNorm, and the embeddings' sum
        assert len(details["kept_float"].get("residual", [])) == (2 * 2 + 1 if name == "executorch-static-int8" else 0)
        # static: each layer's Q, K, V and FFN input take their rows at run time
        assert len(details.get("quantized_at_run_time", [])) == (4 * 2 if name == "executorch-static-int8" else 0)
        got = accuracy(pipeline("text-classification", tmp_path / name), held_out)
        print(f"distilbert executorch: fp32 {fp32:.3f} {name} {got:.3f} (mask quantized too: {collapsed:.3f})")
        assert got >= fp32 - 0.01, (name, got, fp32)


@pytest.mark.integration
def test_quantize_excludes_modules_and_starts_from_a_float_export(exports, tmp_path):
    source, out, _ = exports["bert"]
    whole = quantize_model(out, "executorch-dynamic-int8", tmp_path / "whole")  # the float .pte's checkpoint
    assert whole.static and whole.inputs[0].shape == [1, SEQ]
    kept = quantize_model(source, "executorch-dynamic-int8", tmp_path / "kept", exclude=(r"^bert\.encoder\.layer\.0\.",),
                          seq_len=SEQ)
    counts, before = (m.quantization["details"]["quantized_layers"] for m in (kept, whole))
    # layer 0's six Linears: its FFN output was float already (float_outliers), five more now
    assert counts == {"float": before["float"] + 5, "int8": before["int8"] - 5}
    for manifest, layers in ((whole, before), (kept, counts)):  # every int8 layer fitted, none kept float
        assert manifest.quantization["details"]["fitted_weights"] == layers["int8"]
        assert manifest.quantization["details"]["smoothed_activations"] > 0
    assert kept.files["model"].bytes > whole.files["model"].bytes


@pytest.mark.integration
def test_squeezebert_dynamic_int8_quantizes_its_convolutions_and_nothing_quantized_is_refused(exports, tmp_path):
    """XNNPACK's quantizer skips 1-D convolutions in dynamic int8: SqueezeBERT's file came out
    all float under an int8 name. Its pointwise convolutions now go in as 2-D ones; a recipe
    that quantizes no layer at all is an error, with nothing left behind."""
    source, _, _ = exports["squeezebert"]
    manifest = quantize_model(source, "executorch-dynamic-int8", tmp_path / "q", seq_len=SEQ)
    layers = manifest.quantization["details"]["quantized_layers"]
    assert layers["int8"] > layers["float"] > 0  # the FFN outputs float (float_outliers), the rest int8
    assert manifest.files["model"].bytes < manifest.files["model"].float_bytes
    with pytest.raises(PocketbertError, match="quantized none of this model's"):
        quantize_model(source, "executorch-dynamic-int8", tmp_path / "none", seq_len=SEQ, exclude=(".",))
    assert not (tmp_path / "none").exists()


@pytest.mark.integration
def test_bench_and_sweep_take_pte_files(exports, tmp_path, cli_env, cli_eval_text):
    _, out, _ = exports["bert"]
    source = tmp_path / "ckpt"  # the sweep times token id 1000: a vocabulary larger than the fake 1000
    fake_checkpoint(source, "bert", "text-classification", seed=2, vocab_size=1100)
    done = subprocess.run([sys.executable, "-m", "pocketbert.cli", "bench", str(out / "model.pte"), "--threads", "1",
                           "--num-runs", "3", "--min-secs", "0", "--seq-len", str(SEQ), "--json", str(tmp_path / "b.json")],
                          capture_output=True, text=True, env=cli_env)
    assert done.returncode == 0, done.stderr
    measured = json.loads((tmp_path / "b.json").read_text())["measurements"][0]
    assert (measured["format"], measured["runtime"], measured["threads"]) == ("executorch", "executorch", 1)
    assert measured["median_ms"] > 0
    done = subprocess.run([sys.executable, "-m", "pocketbert.cli", "quantize-sweep", str(source), "--formats", "executorch",
                           "--recipes", "executorch-dynamic-int8", "--seq-len", str(SEQ), "--runs", "3",
                           "--eval-text", str(cli_eval_text), "-o", str(tmp_path / "sweep")],
                          capture_output=True, text=True, env=cli_env)
    assert done.returncode == 0, done.stderr
    rows = {r["recipe"]: r for r in json.loads((tmp_path / "sweep" / "sweep.json").read_text())["rows"]}
    assert set(rows) == {"float32", "executorch-dynamic-int8"} and all("error" not in r for r in rows.values())
    assert rows["executorch-dynamic-int8"]["size_mb"] < rows["float32"]["size_mb"]


@pytest.mark.integration
def test_cli_export(tmp_path, cli_env):
    source = tmp_path / "ckpt"
    fake_model("squeezebert", "text-classification", seed=5).save_pretrained(source)
    done = subprocess.run([sys.executable, "-m", "pocketbert.cli", "export", str(source), "--format", "executorch",
                           "-o", str(tmp_path / "e"), "--seq-len", str(SEQ)], capture_output=True, text=True, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "as executorch" in done.stdout and "model.pte" in done.stdout
    assert Artifact.open(tmp_path / "e").manifest.details["xnnpack"]["subgraphs"] >= 1
