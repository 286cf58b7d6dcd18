"""Adding a runtime is one plugin and one registry line: a toy format, defined here and
nowhere else, with an export option (and its CLI flag) and a recipe parameter of its own,
goes through export, the runner, quantize, bench, parity and the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from pocketbert.formats import FORMATS, open_runner, register, unregister
from pocketbert.contracts.format import Format
from pocketbert.contracts.options import Flag, FormatOptions
from pocketbert.contracts.recipe import Recipe, RecipeParams
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


@dataclass(frozen=True)
class ToyOptions(FormatOptions):
    stamp: str = ""  # written into the file's extra files

    FLAGS: ClassVar[tuple[Flag, ...]] = (Flag("stamp", "a word the toy file carries", {"metavar": "WORD"}),)


@dataclass(frozen=True)
class ToyParams(RecipeParams):
    dtype: str = "qint8"  # the torch dtype of the quantized Linear weights


class ToyFormat(Format):
    name = "toy"
    runtime = "toy-runtime"
    files = {"model": "model.toy"}
    suffixes = {".toy": "toy"}
    quantizes = "model"
    note = "a test's format"
    option_type = ToyOptions
    recipe_params = ToyParams
    recipes = (Recipe("toy-dynamic-int8", "toy", "dynamic", params=ToyParams("qint8"),
                      description="torch.ao dynamic int8 of Linear"),)

    def export(self, model, spec, directory, options):
        stamp = options.own(self).stamp
        with torch.no_grad():
            traced = torch.jit.trace(TupleOutputs(model).eval(), example_args(spec, model.config.vocab_size),
                                     check_trace=False)
        traced.save(str(directory / self.files["model"]), _extra_files={"stamp": stamp})
        return dict(self.files), {"tracer": "torch.jit.trace", "stamp": stamp}

    def open(self, path, input_names, output_names, threads, fixed_sequence_length):
        return ToyRunner(path, input_names, output_names, fixed_sequence_length)

    def quantize(self, job):
        from torch.ao.quantization import quantize_dynamic

        torch.backends.quantized.engine = "x86"
        quantized = quantize_dynamic(job.model, {torch.nn.Linear}, dtype=getattr(torch, job.recipe.params.dtype))
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


@pytest.mark.integration
def test_a_registered_format_exports_runs_quantizes_benches_and_passes_parity(toy, checkpoint, tmp_path):
    from pocketbert.benchmarks.harness import Settings, describe, measure_here
    from pocketbert.quality.parity import parity
    from pocketbert.benchmarks.protocols import format_files
    from pocketbert.export import ExportOptions, export_model
    from pocketbert.quantize import RECIPES, quantize_model

    manifest = export_model(checkpoint, None, "toy", tmp_path / "fp32",
                            ExportOptions(seq_len=16, format_options=ToyOptions(stamp="hello")))
    assert manifest.format == "toy" and manifest.files["model"].validation["max_abs_diff"] < 1e-4
    assert manifest.options["stamp"] == "hello" and manifest.details["stamp"] == "hello"
    extra = {"stamp": ""}
    torch.jit.load(str(tmp_path / "fp32" / "model.toy"), _extra_files=extra)
    assert extra["stamp"] == b"hello"
    runner = open_runner(tmp_path / "fp32" / "model.toy")
    assert runner.output_names == ("logits",)

    assert "toy-dynamic-int8" in RECIPES and format_files()["toy"] == ("toy", "model.toy")
    quantized = quantize_model(checkpoint, "toy-dynamic-int8", tmp_path / "int8", seq_len=16)
    assert quantized.quantization["name"] == "toy-dynamic-int8" and quantized.quantization["dtype"] == "qint8"
    assert not {"engine", "io", "reduce_range"} & set(quantized.quantization)  # no other format's parameters
    assert (tmp_path / "int8" / "model.toy").stat().st_size < manifest.files["model"].bytes

    info = describe(tmp_path / "fp32" / "model.toy")
    assert (info["format"], info["runtime"]) == ("toy", "toy-runtime")
    measured = measure_here(tmp_path / "fp32" / "model.toy", Settings(threads=1, seq_len=16, num_runs=3, min_secs=0))
    assert measured.runs >= 3 and measured.median_ms > 0

    report = parity(checkpoint, [tmp_path / "fp32"], max_abs=1e-4)
    assert report["passed"], report["artifacts"][0]["failures"]


@pytest.mark.integration
def test_the_cli_offers_a_registered_format(toy, checkpoint, tmp_path, capsys):
    from pocketbert.cli import main

    assert main(["export", str(checkpoint), "--format", "toy", "--seq-len", "16", "-o", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["format"] == "toy"
    assert main(["export", str(checkpoint), "--format", "toy", "--ort", "-o", str(tmp_path / "bad")]) == 2
    assert "--ort and --optimize apply to --format onnx only" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.integration
def test_a_format_owns_its_flags(toy, checkpoint, tmp_path, capsys):
    """The toy's --stamp comes from its plugin alone, and another format refuses it in one line."""
    from pocketbert.cli import main

    assert main(["export", str(checkpoint), "--format", "toy", "--stamp", "hi", "--seq-len", "16",
                 "-o", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["options"]["stamp"] == "hi"
    capsys.readouterr()  # the export's own warnings
    assert main(["export", str(checkpoint), "--format", "onnx", "--stamp", "hi", "-o", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pocketbert: error: --stamp applies to --format toy only"], err
    assert not (tmp_path / "bad").exists()
    unregister("toy")  # gone with its plugin
    with pytest.raises(SystemExit, match="2"):
        main(["export", str(checkpoint), "--format", "onnx", "--stamp", "hi", "-o", str(tmp_path / "bad")])
    assert "unrecognized arguments: --stamp" in capsys.readouterr().err


@pytest.mark.integration
def test_options_and_recipe_parameters_of_another_format_are_refused(toy, checkpoint, tmp_path):
    from pocketbert.errors import PocketbertError
    from pocketbert.export import ExportOptions, export_model
    from pocketbert.formats.onnx import OnnxOptions

    with pytest.raises(PocketbertError, match="--stamp applies to --format toy only"):
        export_model(checkpoint, None, "onnx", tmp_path / "a", ExportOptions(format_options=ToyOptions(stamp="x")))
    with pytest.raises(PocketbertError, match="OnnxOptions are not --format toy's options"):
        export_model(checkpoint, None, "toy", tmp_path / "b", ExportOptions(format_options=OnnxOptions()))

    class Mixed(ToyFormat):
        name = "mixed"
        suffixes = {".mixed": "mixed"}
        recipes = (Recipe("mixed-dynamic-int8", "mixed", "dynamic"),)  # no ToyParams

    with pytest.raises(PocketbertError, match="recipe mixed-dynamic-int8 carries RecipeParams, not the format's ToyParams"):
        register(Mixed())
    assert "mixed" not in FORMATS and not any(tmp_path.iterdir())


@pytest.mark.unit
def test_a_suffix_belongs_to_one_format():
    class Clash(ToyFormat):
        name = "clash"
        suffixes = {".onnx": "onnx"}

    with pytest.raises(Exception, match="suffix .onnx belongs to onnx"):
        register(Clash())
    assert "clash" not in FORMATS
