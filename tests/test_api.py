"""The Python API: every command has a function, the README's example runs, results read
three ways, and bad input is the CLI's one line before any work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pocketbert import api
from pocketbert.cli import build_parser
from pocketbert.errors import PocketbertError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.unit
def test_every_command_is_a_function_of_the_api():
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert set(commands) == set(api.COMMANDS), "a command without an API function (or the other way round)"
    for name, function in api.COMMANDS.items():
        assert function.__doc__, f"api function of {name} has no docstring"


@pytest.mark.unit
def test_bad_arguments_are_the_cli_lines_before_any_work(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "t.txt").write_text("a sentence\n")
    refusals = [
        (lambda: api.export(checkpoint, "onnx", tmp_path / "o", seq_len=0), "seq_len: must be >= 1, got 0"),
        (lambda: api.export(checkpoint, "onnx", tmp_path / "o", seq_lens=(16, 32)), "--seq-lens"),
        (lambda: api.export(checkpoint, "onnx", tmp_path / "o", no_such_option=1), "no format has this option"),
        (lambda: api.export(checkpoint, "onnx", checkpoint), "the output would replace the input"),
        (lambda: api.quantize(checkpoint, "onnx-dynamic-int8", tmp_path / "o", exclude=[""]), "exclude: an empty pattern"),
        (lambda: api.quantize(checkpoint, "onnx-dynamic-int8-per-tensor", tmp_path / "o", calibration=checkpoint / "t.txt"),
         "is not calibrated"),
        (lambda: api.bench(), "give INPUT files to measure"),
        (lambda: api.compare([checkpoint]), "--compare needs at least two inputs"),
        (lambda: api.bench([checkpoint], num_runs=0), "num_runs: must be >= 1"),
        (lambda: api.bench([checkpoint], speed="max"), "unknown option speed"),
        (lambda: api.parity(checkpoint, [checkpoint], min_top1=1.5), "min_top1: must be between 0 and 1"),
        (lambda: api.run("fill-mask", checkpoint, []), "empty input"),
        (lambda: api.run("fill-mask", checkpoint, ["a"], similarity=True), "--similarity needs --task"),
        (lambda: api.sweep(checkpoint, tmp_path / "o", workers=2, ray="auto"), "not both"),
        (lambda: api.create("mobilebert", tmp_path / "m", layers=0), "layers: must be >= 1"),
    ]
    for call, line in refusals:
        with pytest.raises(PocketbertError, match=re.escape(line)):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"], "a refused call left something behind"


@pytest.mark.integration
def test_the_readme_example_runs_and_its_results_read_three_ways(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)  # noqa: S102 (the documented example, verbatim)
    printed = capsys.readouterr().out

    fp32, int8, gate, speed, answers = (scope[name] for name in ("fp32", "int8", "gate", "speed", "answers"))
    assert isinstance(fp32, api.Exported) and isinstance(int8, api.Quantized)
    assert fp32.manifest.format == "onnx" and (tmp_path / "out/api/m-int8/manifest.json").is_file()
    assert str(int8) in printed and str(int8).startswith("wrote out/api/m-int8: MobileBertForSentenceEmbedding with onnx-dynamic-int8")
    assert gate.passed is all(row["passed"] for row in gate.records()) and len(gate.records()) == 2
    assert [row["label"] for row in speed.report["comparisons"][0]["rows"]] and speed.records()
    assert [row["input"] for row in answers.records()] == ["A cat sat.", "A dog ran.", "Stocks fell."]
    assert all(len(row["nearest"]) == 1 and -1 <= row["nearest"][0]["cosine"] <= 1 for row in answers.records())
    inspection = api.inspect("out/api/m-int8")
    results = [api.architectures(), api.info("out/api/m"), fp32, int8, gate, speed, inspection, answers]
    for result in results:
        json.loads(result.to_json())  # plain, JSON-safe rows
        table = result._repr_markdown_()
        assert table.startswith(f"**{type(result).__name__}**") and "|---|" in table
        assert str(result).splitlines() == result.lines()
