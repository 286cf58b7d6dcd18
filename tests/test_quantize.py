"""Quantization recipes in every format: applied from a checkpoint or a float export,
recorded in the manifest with their agreement with the float model; calibration text in
three file formats; selective exclusion; clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pocketbert.errors import PocketbertError
from pocketbert.export import ExportOptions, export_model
from pocketbert.models import create_checkpoint
from pocketbert.pipelines import pipeline
from pocketbert.quantize import RECIPES, quantize_model
from pocketbert.models.vocab import corpus_lines
from pocketbert.quantize.calibration import CalibrationError, read_texts

SEQ = 32


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint("mobilebert", "fill-mask", seed=7)


@pytest.fixture(scope="module")
def float_export(checkpoint, tiny_export):
    """The checkpoint's float export in a format, made once per format and worker: formats
    that quantize a file export first anyway (20-40 s for this model), and starting from a
    checkpoint is covered by the tests that do."""
    return lambda fmt: tiny_export(checkpoint, fmt, "fill-mask", seq_len=SEQ)


# ExecuTorch's recipes are applied and their records checked in test_executorch, on a
# classifier whose accuracy they must keep (here they cost CI 4 minutes for the same records)
RECORDED_HERE = [name for name, recipe in RECIPES.items() if recipe.format != "executorch"]


@pytest.mark.unit
def test_the_shared_recipe_fields_leave_each_formats_own_in_place():
    """RecipeParams' own fields are keyword-only: a format's parameters given by position
    (TorchScriptParams("qnnpack")) must not land in them."""
    assert RECIPES["torchscript-dynamic-int8-qnnpack"].params.engine == "qnnpack"
    assert RECIPES["torchscript-dynamic-int8-x86"].params.engine == "x86"
    assert all(type(recipe.params.error_feedback) is bool for recipe in RECIPES.values())


@pytest.mark.parametrize("name", RECORDED_HERE)
@pytest.mark.integration
def test_every_recipe_applies_and_is_recorded(name, checkpoint, float_export, tmp_path):
    from pocketbert.formats import get_format

    recipe = RECIPES[name]
    source = float_export(recipe.format) if get_format(recipe.format).quantizes == "file" else checkpoint
    calibration = None
    if recipe.needs_calibration:  # 16 sentences, not the corpus's 100: observing the MLM logits dominates
        calibration = tmp_path / "calibration.txt"
        calibration.write_text("\n".join(corpus_lines()[:16]) + "\n")
    manifest = quantize_model(source, name, tmp_path / "q", seq_len=SEQ, calibration_file=calibration)
    assert manifest.format == recipe.format
    assert manifest.quantization["name"] == name and manifest.quantization["method"] == recipe.method
    assert (manifest.quantization["calibration"] is not None) == recipe.needs_calibration
    if recipe.needs_calibration:
        assert manifest.quantization["calibration"]["examples"] == 16
    for entry in manifest.files.values():
        assert entry.bytes < entry.float_bytes  # every recipe shrinks the file
        figures = entry.agreement_with_float["logits"]
        assert figures["top1_agreement"] is not None and 0 <= figures["top1_agreement"] <= 1
        if recipe.method in ("dynamic", "weight_only", "float16"):
            assert figures["cosine"] > 0.99 and figures["top1_agreement"] > 0.8, figures
    written = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert written["quantization"]["name"] == name
    assert (tmp_path / "q" / "vocab.txt").is_file()
    if recipe.format == "onnx" and recipe.sixteen_bit_activations:
        assert_integer_end_to_end(tmp_path / "q" / "model.onnx", manifest.quantization["details"])


TABLE_MOVES = {"Gather", "Transpose", "Slice", "Pad", "Reshape", "QuantizeLinear", "DequantizeLinear"}


def assert_integer_end_to_end(path, details):
    """What QNN's HTP needs of a QDQ file: every op that computes values reads dequantized
    16-bit codes and hands its result to a quantize (no float op between); weights 8-bit but
    the ones the manifest names; the embedding tables 8-bit, their lookups' outputs in the
    table's own encoding."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    producer = {out: node for node in graph.node for out in node.output}
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    computing = [n for n in graph.node if n.op_type in {"MatMul", "Add", "Sub", "Mul", "Div", "Sum", "LayerNormalization",
                                                         "Softmax", "Gelu", "Gather", "Transpose", "Reshape"}]
    assert len(computing) > 40
    for node in computing:  # the data input (a Gather's table, a Reshape's tensor) and every float operand
        data = [node.input[0]] + ([] if node.op_type in ("Gather", "Reshape", "Transpose") else list(node.input[1:]))
        assert all(producer[name].op_type == "DequantizeLinear" for name in data), node.name
        assert readers[node.output[0]] and all(r.op_type == "QuantizeLinear" for r in readers[node.output[0]]), node.name
    codes = {init.name: numpy_helper.to_array(init).dtype for init in graph.initializer}
    quantized = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    tables = {f"{name}_quantized" for name in details["eight_bit_tables"]}
    assert tables and {str(codes[name]) for name in tables} == {"uint8"}

    def moved_table(name: str) -> bool:
        """Whether a tensor is a table's codes moved by lookups and layout ops only (a tied MLM
        decoder's transposed table, MobileBERT's shifted trigram copies): the table's encoding."""
        node = producer.get(name)
        while node is not None and node.op_type in TABLE_MOVES:
            if node.op_type == "DequantizeLinear" and node.input[0] in tables:
                return True
            node = producer.get(node.input[0])
        return False

    eight_bit = [n for n in quantized if str(codes[n.input[2]]) == "uint8"]
    assert eight_bit and all(moved_table(n.input[0]) for n in eight_bit)
    assert {str(codes[n.input[2]]) for n in quantized if n not in eight_bit} == {"uint16"}  # activations
    # a MatMul's weight: the constant codes its DequantizeLinear reads
    matmul_weights = {producer[n.input[1]].input[0] for n in graph.node if n.op_type == "MatMul"
                      and producer[n.input[1]].input[0] in codes}
    assert matmul_weights
    wide = {w for w in matmul_weights if str(codes[w]) == "uint16"}
    assert {str(codes[w]) for w in matmul_weights - wide} == {"uint8"}
    assert wide == {f"{name}_quantized" for name in details["sixteen_bit_weights"]}


@pytest.mark.integration
def test_static_recipes_keep_softmax_float_and_choose_the_output_type(float_export, tmp_path):
    import numpy as np
    import onnx

    from pocketbert.formats.tflite.runner import TfliteRunner
    from pocketbert.formats.tflite.litert import interpreter_module

    onnx_static = quantize_model(float_export("onnx"), "onnx-static-int8-minmax", tmp_path / "onnx", seq_len=SEQ)
    # one Softmax and the Add feeding it the masked scores per layer
    details = onnx_static.quantization["details"]
    assert len(details["float_softmax_nodes"]) == 2 * 2
    # the outlier-carrying inputs quantized per token at run time (each layer's Q, K, V, the
    # bottlenecks and four FFNs' projections, the MLM head's transform); each attention output
    # projection reads calibrated int8 (QDQ); the attention products stay float
    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx")).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    float_matmuls = [[producers.get(i) for i in n.input] for n in graph.node if n.op_type == "MatMul"]
    assert len(details["quantized_at_run_time"]) == details["int8_matmuls"] == 2 * 15 + 1
    assert float_matmuls.count(["DequantizeLinear", "DequantizeLinear"]) == 2  # one per layer
    assert sum("DequantizeLinear" not in inputs for inputs in float_matmuls) >= 2 * 2  # QK^T, PV
    for name, softmax_input, output in [("tflite-static-int8", np.float32, np.float32),
                                        ("tflite-full-integer-int8", np.int8, np.int8)]:
        quantize_model(float_export("tflite"), name, tmp_path / name, seq_len=SEQ)
        interpreter = interpreter_module().Interpreter(str(tmp_path / name / "model.tflite"))
        tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
        softmaxes = [op for op in interpreter._get_ops_details() if op["op_name"] == "SOFTMAX"]
        assert softmaxes and all(tensors[op["inputs"][0]]["dtype"] == softmax_input for op in softmaxes)
        signature = interpreter.get_signature_runner()
        assert signature.get_output_details()["logits"]["dtype"] == output
        if output == np.int8:  # the runner hands back real logits: (code - zero point) * scale
            ids = {k: np.ones(d["shape"], d["dtype"]) for k, d in signature.get_input_details().items()}
            scale, zero = signature.get_output_details()["logits"]["quantization"]
            raw = signature(**ids)["logits"].astype(np.float32)
            np.testing.assert_allclose(TfliteRunner(tmp_path / name / "model.tflite")(ids)["logits"], (raw - zero) * scale)


@pytest.mark.parametrize("name", [r for r in RECIPES if r.startswith("onnx-dynamic")])
@pytest.mark.integration
def test_onnx_dynamic_convolutions_become_integer_matmuls_with_the_recipes_weights(name, tmp_path, tiny_checkpoint,
                                                                                  tiny_export):
    """SqueezeBERT's 1x1 convolutions become MatMuls before quantization (ConvInteger's CPU
    kernel is slow; formats/onnx/conv_matmul.py), so no ConvInteger is left and every integer
    MatMul takes the recipe's int8 weights."""
    import onnx
    from onnx import numpy_helper

    # the same export as test_onnx_conv_matmul's: made once per worker
    squeezebert = tiny_export(tiny_checkpoint("squeezebert", "text-classification", seed=7), "onnx", seq_len=16)
    quantize_model(squeezebert, name, tmp_path / "int8")
    graph = onnx.load(str(tmp_path / "int8" / "model.onnx")).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    assert not [node for node in graph.node if node.op_type in ("Conv", "ConvInteger")]
    integer = ("MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul")
    matmuls = [node for node in graph.node if node.op_type in integer]
    assert len(matmuls) >= 2 * 6 and {str(weights[node.input[1]].dtype) for node in matmuls} == {"int8"}


@pytest.mark.integration
def test_pipeline_runs_on_a_quantized_export(checkpoint, tmp_path):
    quantize_model(checkpoint, "onnx-dynamic-int8", tmp_path / "q", seq_len=SEQ)
    got = pipeline("fill-mask", tmp_path / "q")("The capital of France is [MASK].")
    expected = pipeline("fill-mask", checkpoint)("The capital of France is [MASK].")
    assert len(got) == 5 and got[0]["token"] in [e["token"] for e in expected]


@pytest.mark.integration
def test_excluding_layers_keeps_them_in_float(checkpoint, float_export, tmp_path):
    plain = quantize_model(float_export("onnx"), "onnx-dynamic-int8", tmp_path / "plain", seq_len=SEQ)
    # a pattern that matches nothing is said, and the others still apply
    with pytest.warns(UserWarning, match="--exclude 'no_such_layer' matches nothing"):
        kept = quantize_model(float_export("onnx"), "onnx-dynamic-int8", tmp_path / "kept",
                              exclude=(r"^cls\.", "no_such_layer"), seq_len=SEQ)
    assert kept.quantization["excluded_nodes"]
    assert kept.files["model"].bytes > plain.files["model"].bytes  # the head stayed float
    ts = quantize_model(checkpoint, "torchscript-dynamic-int8-x86", tmp_path / "ts", exclude=("encoder",), seq_len=SEQ)
    full_ts = quantize_model(checkpoint, "torchscript-dynamic-int8-x86", tmp_path / "ts2", seq_len=SEQ)
    assert ts.files["model"].bytes > full_ts.files["model"].bytes


@pytest.mark.integration
@pytest.mark.full_calibration
def test_quantizing_a_float_export_and_refusing_the_wrong_one(checkpoint, tmp_path):
    export_model(checkpoint, "fill-mask", "onnx", tmp_path / "float", ExportOptions(seq_len=SEQ))
    manifest = quantize_model(tmp_path / "float", "onnx-static-int8-entropy", tmp_path / "q", seq_len=SEQ)
    # onnxruntime's histogram calibrator keeps every example's tensors: it sees 16, the run-time
    # rows' statistics every example of the length-mixed corpus
    assert manifest.quantization["details"]["calibrator_examples"] == 16
    assert manifest.quantization["calibration"]["examples"] > 200
    with pytest.raises(PocketbertError, match="recipe tflite-dynamic-int8 is for tflite"):
        quantize_model(tmp_path / "float", "tflite-dynamic-int8", tmp_path / "x")
    with pytest.raises(PocketbertError, match="already quantized"):
        quantize_model(tmp_path / "q", "onnx-dynamic-int8", tmp_path / "y")
    with pytest.raises(PocketbertError, match="already exists"):  # refused before any export work
        quantize_model(checkpoint, "onnx-dynamic-int8", tmp_path / "float")
    with pytest.raises(PocketbertError, match="unknown recipe"):
        quantize_model(tmp_path / "float", "onnx-int3", tmp_path / "z")
    assert not any((tmp_path / n).exists() for n in "xyz")


@pytest.mark.integration
def test_calibration_files(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\nsecond line\n")
    (tmp_path / "b.jsonl").write_text('{"text": "one", "text_pair": "two"}\n{"text": "three"}\n')
    (tmp_path / "c.tsv").write_text("label\ttext\n1\thello there\n0\tgoodbye\n")
    assert read_texts(tmp_path / "a.txt") == [("first line", None), ("second line", None)]
    assert read_texts(tmp_path / "b.jsonl") == [("one", "two"), ("three", None)]
    assert read_texts(tmp_path / "c.tsv") == [("hello there", None), ("goodbye", None)]
    assert len(read_texts(None)) >= 200  # the project corpus
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\xff\xfe")
    (tmp_path / "bad.jsonl").write_text('{"sentence": "no text field"}\n')
    (tmp_path / "bad.tsv").write_text("label\tsentence\n1\tx\n")
    for name, message in [("missing.txt", "not found"), ("empty.txt", "no calibration text"),
                          ("binary.txt", "not UTF-8"), ("bad.jsonl", "'text' field"), ("bad.tsv", "'text' column")]:
        with pytest.raises(CalibrationError, match=message):
            read_texts(tmp_path / name)


@pytest.mark.integration
def test_cli_quantize_and_export_quantize(checkpoint, tmp_path, cli_env):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pocketbert.cli", *map(str, args)], capture_output=True,
                              text=True, env=cli_env)

    done = cli("export", checkpoint, "--format", "onnx", "--quantize", "onnx-dynamic-int8", "-o", tmp_path / "e",
               "--seq-len", SEQ)
    assert done.returncode == 0, done.stderr
    assert "top-1 agreement" in done.stdout
    for args, message in [
        (("export", checkpoint, "--format", "torchscript", "--quantize", "onnx-dynamic-int8", "-o", tmp_path / "a"),
         "recipe onnx-dynamic-int8 is for onnx, not torchscript"),
        (("quantize", checkpoint, "--recipe", "onnx-static-int8-minmax", "--calibration", tmp_path / "nope.txt",
          "-o", tmp_path / "b"), "calibration file not found"),
        (("quantize", tmp_path / "e", "--recipe", "onnx-dynamic-int8", "-o", tmp_path / "c"), "already quantized"),
    ]:
        done = cli(*args)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]


@pytest.mark.integration
def test_sensitivity_scan_ranks_every_block(checkpoint, tmp_path, cli_env, cli_eval_text, cli_calibration_text):
    from pocketbert.quantize.scan import scan

    # the CLI's scan (its JSON rows are the library's), onnx; then the library on LiteRT, whose
    # block patterns match tensor names (TorchScript's match module names, as its --exclude does:
    # test_excluding_layers_keeps_them_in_float)
    done = subprocess.run([sys.executable, "-m", "pocketbert.cli", "quantize", str(checkpoint), "--recipe",
                           "onnx-dynamic-int8", "--scan", "--seq-len", str(SEQ), "--eval-text", str(cli_eval_text),
                           "--calibration", str(cli_calibration_text), "-o", str(tmp_path / "scan.json")],
                          capture_output=True, text=True, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "encoder.layer.1" in done.stdout
    rows = json.loads((tmp_path / "scan.json").read_text())["blocks"]
    assert [r["block"] for r in rows if r["block"].startswith("encoder")] != []
    assert sorted(r["block"] for r in rows) == ["embeddings", "encoder.layer.0", "encoder.layer.1", "head"]
    # worst first by the task's figure on real text (held-out sentences), ties by random-id error
    keys = [(r["real_text"], -r["mean_abs_diff"]) for r in rows]
    assert keys == sorted(keys) and all(r["real_text"] is not None for r in rows)
    # LiteRT tensor names carry the module scopes: every block matches its own ops only (the
    # weight-only recipe: the same scopes without the dynamic recipe's calibration passes, 4 x ~15 s;
    # and the embeddings' and head's rows keep the tied table float for one reader and quantize it
    # for the other, which crashed ai-edge-quantizer: formats/tflite/shared_constants.py)
    tflite_rows = scan(checkpoint, "tflite-weight-only-int8", seq_len=SEQ)
    assert sorted(r["block"] for r in tflite_rows) == sorted(r["block"] for r in rows)
    assert len({r["mean_abs_diff"] for r in tflite_rows}) == 4  # each block quantized alone differs


@pytest.mark.integration
def test_sweep_writes_json_markdown_and_chart(checkpoint, tmp_path, cli_env, cli_eval_text):
    done = subprocess.run(
        [sys.executable, "-m", "pocketbert.cli", "quantize-sweep", str(checkpoint), "--formats", "onnx", "tflite",
         "--recipes", "onnx-dynamic-int8", "tflite-float16", "--seq-len", str(SEQ), "--runs", "3",
         "--eval-text", str(cli_eval_text), "-o", str(tmp_path / "sweep")], capture_output=True, text=True, env=cli_env)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    rows = {(r["format"], r["recipe"]): r for r in report["rows"]}
    assert set(rows) == {("onnx", "float32"), ("tflite", "float32"), ("onnx", "onnx-dynamic-int8"), ("tflite", "tflite-float16")}
    assert rows["onnx", "onnx-dynamic-int8"]["size_mb"] < rows["onnx", "float32"]["size_mb"]
    assert all(r["latency_median_ms"] > 0 for r in rows.values())
    assert "| onnx | onnx-dynamic-int8 |" in (tmp_path / "sweep" / "sweep.md").read_text()
    assert (tmp_path / "sweep" / "sweep.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.integration
def test_sweep_eval_data_errors(tmp_path):
    from pocketbert.quantize.sweep import read_labelled

    (tmp_path / "ok.tsv").write_text("text\tlabel\na fine day\tpleasant\n")
    assert read_labelled(tmp_path / "ok.tsv") == [("a fine day", "pleasant")]
    (tmp_path / "bad.jsonl").write_text('{"text": "no label"}\n')
    with pytest.raises(PocketbertError, match="expected 'text' and 'label'"):
        read_labelled(tmp_path / "bad.jsonl")
    with pytest.raises(PocketbertError, match="not found"):
        read_labelled(tmp_path / "missing.tsv")


@pytest.mark.integration
def test_export_with_quantize_honours_every_export_option(checkpoint, tmp_path):
    """export --quantize used to keep only --seq-len/--task/--calibration/--force."""
    from pocketbert.cli import main

    out = tmp_path / "q"
    code = main(["export", str(checkpoint), "--format", "onnx", "--quantize", "onnx-dynamic-int8", "--static",
                 "--batch", "2", "--seq-len", "24", "--opset", "17", "--atol", "0.001", "--optimize", "-o", str(out)])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["static"] is True and manifest["inputs"][0]["shape"] == [2, 24]
    assert manifest["options"]["opset"] == 17 and manifest["options"]["optimize"] is True
    assert manifest["options"]["atol"] == 0.001 and manifest["details"]["opset"] == 17
    assert main(["export", str(checkpoint), "--format", "tflite", "--quantize", "tflite-dynamic-int8", "--ort",
                 "-o", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_target_writes_the_fastest_file_meeting_it_and_escalates_to_float_blocks(tmp_path, monkeypatch):
    from pocketbert.quantize.target import parse_target, quantize_to_target

    source = tmp_path / "bert"
    create_checkpoint("bert", source, task="text-classification", layers=1, seed=2)
    recipes = ["onnx-dynamic-int8-per-tensor", "onnx-dynamic-int8-per-channel"]
    manifest = quantize_to_target(source, "onnx", "agreement>=0.9", tmp_path / "best", seq_len=SEQ,
                                  recipe_names=recipes)
    search = manifest.quantization["target_search"]
    assert search["target"] == {"metric": "label_agreement", "floor": 0.9}
    assert [c["recipe"] for c in search["candidates"]] == recipes
    meeting = [c for c in search["candidates"] if c["label_agreement"] >= 0.9]
    assert search["chosen"] == min(meeting, key=lambda c: c["median_ms"])["candidate"]
    chosen = next(c for c in search["candidates"] if c["candidate"] == search["chosen"])
    from pocketbert.quality.metrics import default_texts

    held_out = chosen["held_out"]  # every other held-out text: the rest tuned the search
    assert held_out["label_agreement"] >= 0.9 and held_out["sentences"] == len(default_texts()) // 2
    assert (tmp_path / "best" / "model.onnx").is_file()
    # a target no recipe meets: blocks kept in float, worst first, until it holds or the limit
    # (every candidate made to miss it, to follow the search to its end)
    from pocketbert.quality import metrics as quality

    real = quality.measure
    monkeypatch.setattr(quality, "measure", lambda *a, **k: {**real(*a, **k), "label_agreement": 0.5})
    seen = []
    with pytest.raises(PocketbertError, match="no onnx file meets label_agreement>=0.9: the best was"):
        quantize_to_target(source, "onnx", "agreement>=0.9", tmp_path / "never", seq_len=SEQ, max_float_blocks=1,
                           recipe_names=recipes[:1], progress=seen.append)
    assert seen[0].startswith("onnx-dynamic-int8-per-tensor:") and " + " in seen[-1]  # a block kept float
    assert not (tmp_path / "never").exists()
    with pytest.raises(PocketbertError, match="has no figure 'cosine_mean'"):
        parse_target("cosine_mean>=0.9", "text-classification")
    with pytest.raises(PocketbertError, match="write it as METRIC>=VALUE"):
        parse_target("cosine", "feature-extraction")
