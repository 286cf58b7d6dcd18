"""Adding a runtime is one plugin and one registry line: a toy format, defined here and
nowhere else, goes through export, the runner, quantize, bench, parity and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pocketbert.formats import FORMATS, open_runner, register, unregister
from pocketbert.contracts.format import Format
from pocketbert.contracts.recipe import Recipe
from pocketbert.contracts.spec import TupleOutputs, example_args


class ToyRunner:
    """A traced module saved under its own suffix, run with names from the manifest."""

    def __init__(self, path, input_names, output_names, fixed_sequence_length):
        self.module = torch.jit.load(str(path))
        self.input_names, self.output_names = input_names, output_names
        self.fixed_sequence_length = fixed_sequence_length

    def __call__(self, inputs):
        args = [torch.as_tensor(np.asarray(inputs[n], dtype=np.int64)) for n in self.input_names]
        with torch.inference_mode():
            return {n: v.numpy() for n, v in zip(self.output_names, self.module(*args))}


class ToyFormat(Format):
    name = "toy"
    runtime = "toy-runtime"
    files = {"model": "model.toy"}
    suffixes = {".toy": "toy"}
    quantizes = "model"
    note = "a test's format"
    recipes = (Recipe("toy-dynamic-int8", "toy", "dynamic", description="torch.ao dynamic int8 of Linear"),)

    def export(self, model, spec, directory, options):
        with torch.no_grad():
            traced = torch.jit.trace(TupleOutputs(model).eval(), example_args(spec, model.config.vocab_size),
                                     check_trace=False)
        traced.save(str(directory / self.files["model"]))
        return dict(self.files), {"tracer": "torch.jit.trace"}

    def open(self, path, input_names, output_names, threads, fixed_sequence_length):
        return ToyRunner(path, input_names, output_names, fixed_sequence_length)

    def quantize(self, job):
        from torch.ao.quantization import quantize_dynamic

        torch.backends.quantized.engine = "x86"
        quantized = quantize_dynamic(job.model, {torch.nn.Linear}, dtype=torch.qint8)
        return self.export(quantized, job.spec, job.directory, job.options)


@pytest.fixture
def toy():
    plugin = register(ToyFormat())
    yield plugin
    unregister("toy")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from pocketbert.models import create_checkpoint

    path = tmp_path_factory.mktemp("toy") / "ckpt"
    create_checkpoint("bert", path, task="text-classification", layers=1, seed=3)
    return path


def test_a_registered_format_exports_runs_quantizes_benches_and_passes_parity(toy, checkpoint, tmp_path):
    from pocketbert.benchmarks.harness import Settings, describe, measure_here
    from pocketbert.quality.parity import parity
    from pocketbert.benchmarks.protocols import runtime_files
    from pocketbert.export import ExportOptions, export_model
    from pocketbert.quantize import RECIPES, quantize_model

    manifest = export_model(checkpoint, None, "toy", tmp_path / "fp32", ExportOptions(seq_len=16))
    assert manifest["format"] == "toy" and manifest["files"]["model"]["validation"]["max_abs_diff"] < 1e-4
    runner = open_runner(tmp_path / "fp32" / "model.toy")
    assert runner.output_names == ("logits",)

    assert "toy-dynamic-int8" in RECIPES and runtime_files()["toy"] == ("toy", "model.toy")
    quantized = quantize_model(checkpoint, "toy-dynamic-int8", tmp_path / "int8", seq_len=16)
    assert quantized["quantization"]["name"] == "toy-dynamic-int8"
    assert (tmp_path / "int8" / "model.toy").stat().st_size < manifest["files"]["model"]["bytes"]

    info = describe(tmp_path / "fp32" / "model.toy")
    assert (info["format"], info["runtime"]) == ("toy", "toy-runtime")
    measured = measure_here(tmp_path / "fp32" / "model.toy", Settings(threads=1, seq_len=16, num_runs=3, min_secs=0))
    assert measured.runs >= 3 and measured.median_ms > 0

    report = parity(checkpoint, [tmp_path / "fp32"], max_abs=1e-4)
    assert report["passed"], report["artifacts"][0]["failures"]


def test_the_cli_offers_a_registered_format(toy, checkpoint, tmp_path, capsys):
    from pocketbert.cli import main

    assert main(["export", str(checkpoint), "--format", "toy", "--seq-len", "16", "-o", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["format"] == "toy"
    assert main(["export", str(checkpoint), "--format", "toy", "--ort", "-o", str(tmp_path / "bad")]) == 2
    assert "--ort and --optimize apply to --format onnx only" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_a_suffix_belongs_to_one_format():
    class Clash(ToyFormat):
        name = "clash"
        suffixes = {".onnx": "onnx"}

    with pytest.raises(Exception, match="suffix .onnx belongs to onnx"):
        register(Clash())
    assert "clash" not in FORMATS
