"""``pocketbert parity``: exported files against their checkpoint as a CI gate. Float
exports pass tight thresholds, an int8 one fails them (exit 1); labelled data gives
accuracy or SQuAD EM/F1 of the file and of PyTorch; bad input is exit 2 with one line.

The CLI runs in-process (``pocketbert.cli.main`` with the parity command registered)."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

from pocketbert.quality import eval_data
from pocketbert.quality.eval_data import EvalDataError, SquadQuestion, read_eval_data
from pocketbert.quality.parity import parity, threshold_failures
from pocketbert.export import ExportOptions, export_model
from pocketbert.models import create_checkpoint
from pocketbert.pipelines import pipeline
from pocketbert.quantize import quantize_model

pytestmark = pytest.mark.integration

SEQ = 32
SHORT = [  # under 32 tokens each, so a fixed-length file and PyTorch read the same tokens
    "the house was quiet and warm.",
    "rain fell on the old market all day.",
    "my friend thinks this song is lovely.",
    "the train to the city was late again.",
    "what a cold and noisy room!",
    "children played in the garden after school.",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    create_checkpoint("mobilebert", root / "clf", task="text-classification", layers=2, seed=3)
    export_model(root / "clf", "text-classification", "onnx", root / "onnx", ExportOptions(seq_len=SEQ))
    export_model(root / "clf", "text-classification", "tflite", root / "tflite", ExportOptions(seq_len=SEQ))
    quantize_model(root / "onnx", "onnx-dynamic-int8", root / "int8", seq_len=SEQ)
    create_checkpoint("mobilebert", root / "qa", task="question-answering", layers=2, seed=5)
    export_model(root / "qa", "question-answering", "onnx", root / "qa-onnx", ExportOptions(seq_len=SEQ))
    return root


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``pocketbert ...`` in-process: (exit code, stdout, stderr)."""
    import pocketbert.cli

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it

    def run(*args):
        capsys.readouterr()
        try:
            code = pocketbert.cli.main([str(a) for a in args])
        except SystemExit as exc:  # a value argparse refuses
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_float_exports_pass_tight_thresholds(files, cli, tmp_path):
    code, out, err = cli("parity", files / "clf", files / "onnx" / "model.onnx", files / "tflite",
                         "--max-abs", "1e-4", "--min-top1", "1", "--json", tmp_path / "report.json")
    assert code == 0, out + err
    assert "parity passed: 2 file(s)" in out and "FAIL" not in out
    assert out.count("PASS") == 2 and "top-1 sentences" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and [e["format"] for e in report["artifacts"]] == ["onnx", "tflite"]
    assert [e["fixed_sequence_length"] for e in report["artifacts"]] == [None, SEQ]
    for entry in report["artifacts"]:
        assert entry["passed"] and entry["failures"] == [] and entry["sentence_count"] == 32
        for check in ("random", "sentences"):
            figures = entry[check]["logits"]
            assert figures["max_abs_diff"] < 1e-4 and figures["cosine"] > 0.9999
            assert figures["top1_agreement"] == 1.0
    assert not list(tmp_path.glob(".report.json.*"))  # written atomically: no temporary left


def test_int8_fails_tight_thresholds_and_passes_loose_ones(files, cli, tmp_path):
    code, out, _ = cli("parity", files / "clf", files / "int8", "--max-abs", "1e-6", "--json", tmp_path / "r.json")
    assert code == 1
    assert "FAIL" in out and "parity FAILED: 1 of 1 file(s)" in out
    report = json.loads((tmp_path / "r.json").read_text())  # written when parity fails too
    failures = report["artifacts"][0]["failures"]
    assert report["passed"] is False and report["artifacts"][0]["quantization"] == "onnx-dynamic-int8"
    assert any("max abs diff" in f and "(random inputs)" in f for f in failures)
    assert any("(corpus sentences)" in f for f in failures)
    code, out, _ = cli("parity", files / "clf", files / "int8", "--max-abs", "0.1", "--min-top1", "0.5")
    assert code == 0 and "PASS" in out


def test_classification_accuracy_from_tsv_and_jsonl(files, cli, tmp_path):
    predicted = [p[0]["label"] for p in pipeline("text-classification", files / "clf")(SHORT)]
    flip = {"LABEL_0": "LABEL_1", "LABEL_1": "LABEL_0"}
    gold = predicted[:4] + [flip[label] for label in predicted[4:]]  # 4 of 6 right
    (tmp_path / "eval.tsv").write_text("text\tlabel\ttext_pair\n" + "".join(
        f"{text}\t{label}\t\n" for text, label in zip(SHORT, gold)))
    with open(tmp_path / "eval.jsonl", "w") as f:
        for text, label in zip(SHORT, gold):
            f.write(json.dumps({"text": text, "label": int(label[-1])}) + "\n")  # ids, not names
    expected = 100 * 4 / 6
    for name in ("eval.tsv", "eval.jsonl"):
        report = parity(files / "clf", [files / "onnx"], eval_data=tmp_path / name)
        assert report["eval_data"]["kind"] == "classification" and report["eval_data"]["examples"] == 6
        accuracy = report["artifacts"][0]["eval"]["accuracy"]
        assert accuracy["artifact"] == pytest.approx(expected) and accuracy["pytorch"] == pytest.approx(expected)
        assert accuracy["delta"] == 0
    # the fixed-length file: PyTorch reads the same 32 tokens
    code, out, _ = cli("parity", files / "clf", files / "tflite", "--eval-data", tmp_path / "eval.tsv",
                       "--max-metric-drop", "0", "--json", tmp_path / "r.json")
    assert code == 0 and "accuracy 66.67" in out and "+0.00" in out
    accuracy = json.loads((tmp_path / "r.json").read_text())["artifacts"][0]["eval"]["accuracy"]
    assert accuracy == {"artifact": pytest.approx(expected), "pytorch": pytest.approx(expected), "delta": 0}


def test_text_pairs_reach_the_model(files, tmp_path):
    with open(tmp_path / "pairs.jsonl", "w") as f:
        for text in SHORT:
            f.write(json.dumps({"text": text, "text_pair": "and then it rained.", "label": "LABEL_0"}) + "\n")
    data = read_eval_data(tmp_path / "pairs.jsonl")
    assert data.examples[0].text_pair == "and then it rained."
    pipe = pipeline("text-classification", files / "tflite")
    encode, seen = pipe.encode, []
    pipe.encode = lambda text, pair=None, **kw: seen.append((text, pair)) or encode(text, pair, **kw)
    assert eval_data.predict_labels(pipe, data.examples) == [int(p[0]["label"][-1]) for p in pipe(
        [(text, "and then it rained.") for text in SHORT])]
    assert seen[0] == (SHORT[0], "and then it rained.")
    report = parity(files / "clf", [files / "tflite"], eval_data=tmp_path / "pairs.jsonl")
    assert report["artifacts"][0]["eval"]["accuracy"]["delta"] == 0


def test_squad_exact_match_and_f1_on_a_qa_export(files, cli, tmp_path):
    # no punctuation or articles in the contexts: every predicted span normalises to words
    contexts = ["quiet rivers run past old mills and green gardens near small village schools",
                "trains leave early every morning for cities beyond distant hills"]
    questions = [("where do rivers run", contexts[0]), ("when do trains leave", contexts[1])]
    qa = pipeline("question-answering", files / "qa")
    answers = [qa({"question": q, "context": c})[0]["answer"] for q, c in questions]
    squad = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": contexts[0], "qas": [
            {"id": "q1", "question": questions[0][0], "answers": [{"text": "zzz"}, {"text": f"The {answers[0].upper()}!"}]},
            {"id": "unanswerable", "question": "why", "answers": []}]},
        {"context": contexts[1], "qas": [{"id": "q2", "question": questions[1][0], "answers": [{"text": "zzz qqq"}]}]},
    ]}]}
    (tmp_path / "dev.json").write_text(json.dumps(squad))
    report = parity(files / "qa", [files / "qa-onnx"], eval_data=tmp_path / "dev.json")
    assert report["eval_data"] == {"path": str(tmp_path / "dev.json"), "kind": "squad", "examples": 2, "skipped": 1}
    scores = report["artifacts"][0]["eval"]
    for metric in ("exact_match", "f1"):  # q1 right (after normalisation), q2 wrong
        assert scores[metric] == {"artifact": 50.0, "pytorch": 50.0, "delta": 0.0}
    assert set(report["artifacts"][0]["sentences"]) == {"start_logits", "end_logits"}
    code, out, _ = cli("parity", files / "qa", files / "qa-onnx", "--eval-data", tmp_path / "dev.json")
    assert code == 0 and "exact_match 50.00" in out and "f1 50.00" in out


def test_squad_metric_functions_by_hand():
    assert eval_data.normalize_answer("The  Cat, sat!") == "cat sat"
    assert eval_data.normalize_answer("An apple a day") == "apple day"
    assert eval_data.exact_match("an Apple.", "apple") == 1.0
    assert eval_data.exact_match("apples", "apple") == 0.0
    # pred tokens cat sat on mat, gold cat on mat: P 3/4, R 1
    assert eval_data.f1("the cat sat on the mat", "cat on mat") == pytest.approx(2 * 0.75 / 1.75)
    assert eval_data.f1("red red blue", "red") == pytest.approx(2 * (1 / 3) / (4 / 3))  # counts, not sets
    assert eval_data.f1("a b c", "d") == 0.0
    questions = [SquadQuestion("1", "q", "c", ("paris", "PARIS!")), SquadQuestion("2", "q", "c", ("tower bridge", "bridge"))]
    scores = eval_data.squad_scores(["Paris", "london bridge"], questions)
    assert scores["exact_match"] == pytest.approx(50.0)
    # q2: best of F1 0.5 ("tower bridge") and 2/3 ("bridge")
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_eval_data_errors(tmp_path):
    from pocketbert.models.configs import ModelConfig

    cases = {
        "missing.tsv": (None, "eval data not found"),
        "empty.jsonl": ("\n \n", "eval data is empty"),
        "data.csv": ("text,label\nx,1\n", "unknown eval data extension '.csv'"),
        "nolabel.tsv": ("text\tsentiment\nhello\t1\n", "expected 'text' and 'label' columns"),
        "ragged.tsv": ("text\tlabel\nhello\t1\textra\n", "expected 2 tab-separated fields"),
        "badjson.jsonl": ('{"text": "a", "label": 0}\n{"text": \n', "badjson.jsonl:2: not valid JSON"),
        "nolabel.jsonl": ('{"text": "no label"}\n', "expected 'text' and 'label'"),
        "float.jsonl": ('{"text": "a", "label": 0.5}\n', "label must be a label name or an integer id"),
        "nodata.json": ('{"version": "1.1"}', 'not SQuAD JSON (expected an object with a "data" list'),
        "broken.json": ('{"data": [', "not valid JSON"),
        "noqas.json": ('{"data": [{"paragraphs": [{"context": "x"}]}]}', 'expected "context" (a string) and "qas"'),
        "impossible.json": ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"question": "y", "answers": []}]}]}]}',
                            "no answerable questions"),
    }
    for name, (content, message) in cases.items():
        if content is not None:
            (tmp_path / name).write_text(content)
        with pytest.raises(EvalDataError) as caught:
            read_eval_data(tmp_path / name)
        assert message in str(caught.value) and "\n" not in str(caught.value), name
    (tmp_path / "ok.jsonl").write_text('{"text": "a", "label": "positive"}\n{"text": "b", "label": 1}\n'
                                       '{"text": "c", "label": "7"}\n')
    data = read_eval_data(tmp_path / "ok.jsonl")
    config = ModelConfig(id2label={0: "negative", 1: "positive"})
    with pytest.raises(EvalDataError, match=r"ok.jsonl:3: label '7' is not one of the model's labels \(negative, positive\)"):
        eval_data.label_ids(data.examples, config, tmp_path / "ok.jsonl")
    assert eval_data.label_ids(data.examples[:2], config) == [1, 1]


def test_threshold_failures_cover_every_figure():
    figures = {"max_abs_diff": 0.02, "mean_abs_diff": 0.001, "cosine": 0.999, "top1_agreement": 0.9}
    entry = {"random": {"logits": figures}, "sentences": {"logits": {**figures, "top1_agreement": None}},
             "eval": {"accuracy": {"artifact": 80.0, "pytorch": 82.5, "delta": -2.5}}}
    assert threshold_failures(entry) == []
    failures = threshold_failures(entry, max_abs=0.01, min_top1=0.95, max_metric_drop=2.0)
    assert failures == [
        "logits: max abs diff 0.02 > 0.01 (random inputs)",
        "logits: top-1 agreement 0.9000 < 0.95 (random inputs)",
        "logits: max abs diff 0.02 > 0.01 (corpus sentences)",
        "accuracy: 80.00 is 2.50 points under PyTorch's 82.50 (max drop 2)",
    ]
    assert threshold_failures(entry, max_metric_drop=2.5) == []
    assert threshold_failures(entry, max_abs=float("nan")) != []  # NaN never passes


def test_bad_input_is_exit_2_with_one_line(files, cli, tmp_path):
    shutil.copytree(files / "onnx", tmp_path / "truncated")
    model_file = tmp_path / "truncated" / "model.onnx"
    model_file.write_bytes(model_file.read_bytes()[:1000])
    (tmp_path / "dev.json").write_text(json.dumps({"data": [{"paragraphs": [
        {"context": "a b c", "qas": [{"id": "1", "question": "q", "answers": [{"text": "b"}]}]}]}]}))
    checkpoint, onnx = files / "clf", files / "onnx"
    for args, message in [
        ((checkpoint, onnx, "--eval-data", tmp_path / "missing.tsv"), "missing.tsv: eval data not found"),
        ((checkpoint, onnx, "--eval-data", tmp_path / "dev.json"),
         "squad eval data is for question-answering models"),
        ((checkpoint, tmp_path / "nope"), "no such artifact directory or model file"),
        ((checkpoint, tmp_path / "truncated"), "sha256 differs from manifest.json (truncated or modified file)"),
        ((checkpoint, onnx, "--max-metric-drop", "1"), "--max-metric-drop needs --eval-data"),
        ((checkpoint, onnx, "--min-top1", "99"), "--min-top1: must be between 0 and 1"),
        ((files / "qa", onnx), "no trained weights for the text-classification head"),
        ((onnx, onnx), "an export artifact; MODEL is the PyTorch checkpoint"),
        ((checkpoint, tmp_path), "no manifest.json"),
    ]:
        code, out, err = cli("parity", *args)
        assert code == 2, (args, out, err)
        assert err.startswith("pocketbert: error: ") and message in err, (args, err)
        assert err.count("\n") == 1 and "Traceback" not in err and out == ""
