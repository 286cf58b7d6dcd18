"""Pipelines give what transformers' pipelines give on the same checkpoint; QA, multiple
choice and NSP (which transformers 5 has no pipeline for) are checked on known logits."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from helpers import hf, quiet

from pocketbert.errors import PocketbertError
from pocketbert.models import create_checkpoint, registry
from pocketbert.pipelines import PIPELINES, PipelineError, QuestionAnsweringPipeline, pipeline

TEXTS = [
    "The capital of France is [MASK].",
    "Crème brûlée is a [MASK] dessert from France, and the [MASK] is a river.",
    "[MASK] walked to the market on Saturday morning.",
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Created checkpoints (project vocab, random weights) of every architecture."""
    root = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for arch in registry.ARCHITECTURES:
        for task in ("fill-mask", "text-classification", "token-classification"):
            if task not in registry.get_architecture(arch).tasks:
                continue
            path = root / f"{arch}-{task}"
            create_checkpoint(arch, path, task=task, layers=2, seed=11)
            paths[arch, task] = path
    return paths


def hf_pipeline(task, path):
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hf().pipeline(task, model=str(path), device="cpu")


@pytest.mark.parametrize("arch", list(registry.ARCHITECTURES))
@pytest.mark.unit
def test_fill_mask_matches_transformers_pipeline(arch, checkpoints):
    ours = pipeline("fill-mask", checkpoints[arch, "fill-mask"])
    theirs = hf_pipeline("fill-mask", checkpoints[arch, "fill-mask"])
    for text in TEXTS:
        got, expected = ours(text), theirs(text)
        if isinstance(got[0], dict):
            got, expected = [got], [expected]
        assert len(got) == len(expected) == text.count("[MASK]")
        for got_mask, expected_mask in zip(got, expected):
            assert len(got_mask) == 5
            assert [g["token"] for g in got_mask] == [e["token"] for e in expected_mask]
            assert [g["token_str"] for g in got_mask] == [e["token_str"] for e in expected_mask]
            assert [g["sequence"] for g in got_mask] == [e["sequence"] for e in expected_mask]
            np.testing.assert_allclose([g["score"] for g in got_mask], [e["score"] for e in expected_mask], atol=1e-4)


@pytest.mark.parametrize("arch", list(registry.ARCHITECTURES))
@pytest.mark.unit
def test_text_classification_matches_transformers_pipeline(arch, checkpoints):
    ours = pipeline("text-classification", checkpoints[arch, "text-classification"])
    theirs = hf_pipeline("text-classification", checkpoints[arch, "text-classification"])
    for text in TEXTS + ["A sentence without any mask at all."]:
        got, expected = ours(text, top_k=None), theirs(text, top_k=None)
        assert [g["label"] for g in got] == [e["label"] for e in expected]
        np.testing.assert_allclose([g["score"] for g in got], [e["score"] for e in expected], atol=1e-5)
        assert ours(text)[0]["label"] == theirs(text)[0]["label"]


@pytest.mark.parametrize("aggregation", ["none", "simple", "first", "average", "max"])
@pytest.mark.parametrize("arch", ["mobilebert", "distilbert"])
@pytest.mark.unit
def test_token_classification_matches_transformers_pipeline(arch, aggregation, checkpoints):
    ours = pipeline("token-classification", checkpoints[arch, "token-classification"])
    theirs = hf_pipeline("token-classification", checkpoints[arch, "token-classification"])
    for text in ["Marie Curie won two Nobel prizes in Paris.", "Unbelievably, Dvořák's résumé mentions Zürich."]:
        got = ours(text, aggregation=aggregation)
        expected = theirs(text, aggregation_strategy=aggregation)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert {k: g[k] for k in g if k != "score"} == {k: (int(e[k]) if k in ("index", "start", "end") else e[k]) for k in g if k != "score"}
            assert g["score"] == pytest.approx(float(e["score"]), abs=1e-5)


class FakeQARunner:
    """Logits that put the answer on chosen context words, to check span selection."""

    input_names = ("input_ids", "attention_mask", "token_type_ids")
    output_names = ("start_logits", "end_logits")
    fixed_sequence_length = None

    def __init__(self, tokenizer, answer: str):
        self.tokenizer, self.answer_ids = tokenizer, tokenizer(answer, add_special_tokens=False)["input_ids"]
        self.calls = 0

    def __call__(self, inputs):
        self.calls += 1
        ids = inputs["input_ids"][0]
        start = np.full(ids.shape, -5.0, dtype=np.float32)
        end = np.full(ids.shape, -5.0, dtype=np.float32)
        n = len(self.answer_ids)
        for i in range(len(ids) - n + 1):
            if list(ids[i : i + n]) == self.answer_ids and inputs["token_type_ids"][0][i] == 1:
                start[i], end[i + n - 1] = 8.0, 8.0
        start[0] = end[0] = 9.0  # [CLS] is outside the context and must never win
        return {"start_logits": start[None], "end_logits": end[None]}


def qa_pipeline(checkpoints, answer):
    from pocketbert.models import load_config
    from pocketbert.models.tokenizer import load_tokenizer

    path = checkpoints["bert", "fill-mask"]
    tokenizer = load_tokenizer(path)
    runner = FakeQARunner(tokenizer, answer)
    return QuestionAnsweringPipeline(runner, tokenizer, load_config(path)), runner


@pytest.mark.unit
def test_question_answering_finds_the_span_and_its_text(checkpoints):
    qa, _ = qa_pipeline(checkpoints, "marie curie")
    context = "In 1903 and 1911, Marie Curie won two Nobel prizes."
    best = qa(("Who won two Nobel prizes?", context))[0]
    assert best["answer"] == "Marie Curie" and context[best["start"] : best["end"]] == "Marie Curie"
    assert best["score"] > 0.5


@pytest.mark.unit
def test_question_answering_reads_long_contexts_in_windows(checkpoints):
    qa, runner = qa_pipeline(checkpoints, "lighthouse keeper")
    filler = " ".join(["The harbour was quiet and the boats were tied up for the night."] * 60)
    context = filler + " At the end of the pier lived the lighthouse keeper. " + filler
    best = qa(("Who lived at the end of the pier?", context), max_seq_len=128, doc_stride=32)[0]
    assert runner.calls > 5  # several overlapping windows
    assert best["answer"] == "lighthouse keeper"
    assert context[best["start"] : best["end"]] == "lighthouse keeper"


@pytest.mark.unit
def test_multiple_choice_and_nsp_rank_with_softmax(checkpoints, tmp_path):
    mc_path, nsp_path = tmp_path / "mc", tmp_path / "nsp"
    create_checkpoint("squeezebert", mc_path, task="multiple-choice", layers=1, seed=2)
    create_checkpoint("mobilebert", nsp_path, task="next-sentence-prediction", layers=1, seed=2)
    ranked = pipeline("multiple-choice", mc_path)(("The sky is", "blue.", "a sandwich.", "made of cheese."))
    assert sorted(r["choice"] for r in ranked) == ["a sandwich.", "blue.", "made of cheese."]
    assert sum(r["score"] for r in ranked) == pytest.approx(1.0)
    assert ranked == sorted(ranked, key=lambda r: -r["score"])
    nsp = pipeline("next-sentence-prediction", nsp_path)(("It rained all day.", "We stayed inside."))
    assert {r["label"] for r in nsp} == {"is_next", "not_next"}
    assert sum(r["score"] for r in nsp) == pytest.approx(1.0)


@pytest.mark.unit
def test_bad_pipeline_inputs(checkpoints):
    fill = pipeline("fill-mask", checkpoints["mobilebert", "fill-mask"])
    with pytest.raises(PipelineError, match=r"no \[MASK\]"):
        fill("nothing to fill")
    with pytest.raises(PipelineError, match="empty input"):
        fill("   ")
    long_text = "word " * 600 + "[MASK]"
    with pytest.warns(UserWarning, match="truncated to the model's 512"):
        with pytest.raises(PipelineError, match=r"no \[MASK\]"):  # the mask fell off the end
            fill(long_text)
    strict = pipeline("fill-mask", checkpoints["mobilebert", "fill-mask"], truncation=False)
    with pytest.raises(PipelineError, match="truncation is off"):
        strict("[MASK] " + "word " * 600)
    qa, _ = qa_pipeline(checkpoints, "x")
    with pytest.raises(PipelineError, match="needs a context"):
        qa(("Who?", ""))
    with pytest.raises(PocketbertError, match="unknown task"):
        pipeline("summarization", checkpoints["mobilebert", "fill-mask"])


@pytest.mark.unit
def test_every_pipeline_task_is_a_registered_model_task():
    for cls in PIPELINES.values():
        assert cls.model_task in registry.TASKS


# ---- the CLI, as the docs show it -----------------------------------------------------------------
def run_cli(*args, stdin=b"", env=None):
    return subprocess.run([sys.executable, "-m", "pocketbert.cli", *map(str, args)], input=stdin,
                          capture_output=True, env=env)


@pytest.mark.integration
def test_cli_fill_mask_from_stdin_prints_five_tokens_like_transformers(checkpoints, cli_env):
    path = checkpoints["mobilebert", "fill-mask"]
    done = run_cli("run", "--task", "fill-mask", "--model", path, stdin=b"The capital of France is [MASK].\n", env=cli_env)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "The capital of France is [MASK]."
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 5
    expected = hf_pipeline("fill-mask", path)("The capital of France is [MASK].")
    assert [r[1] for r in rows] == [e["token_str"] for e in expected]
    assert [float(r[0]) for r in rows] == pytest.approx([e["score"] for e in expected], abs=1e-4)


@pytest.mark.integration
def test_cli_json_and_bad_input(checkpoints, cli_env):
    path = checkpoints["bert", "text-classification"]
    done = run_cli("run", "--task", "text-classification", "--model", path, "--json", "good film", "bad film", env=cli_env)
    assert done.returncode == 0, done.stderr.decode()
    assert len(done.stdout.decode().splitlines()) == 2
    for args, stdin, message in [
        (["--task", "fill-mask"], b"no mask\n", "no [MASK]"),
        (["--task", "fill-mask"], b"\xff\xfe bad bytes [MASK]\n", "stdin is not UTF-8"),
        (["--task", "fill-mask"], b"  \n\n", "empty input"),
        (["--task", "question-answering"], b"Who?\n", "needs a context"),
        (["--task", "fill-mask", "--device", "0"], b"[MASK]\n", "device '0' is not available"),
        (["--task", "fill-mask", "--no-truncation"], b"[MASK] " + b"word " * 600 + b"\n", "truncation is off"),
    ]:
        done = run_cli("run", "--model", path, *args, stdin=stdin, env=cli_env)
        err = done.stderr.decode()
        assert done.returncode == 2, err
        assert "Traceback" not in err and message in err, err
