"""The android_demo's sequence buckets (SequenceBuckets.java, which BertModel.kt calls) against
contracts/buckets.py: the same bucket for every length, the same signature names, the same
trimming of sequence outputs; and on a real bucketed export, the app's input (tokenized in Java,
padded to the bucket it picks, from the manifest android-assets copies) run in the signature it
names gives the Python runner's numbers. Compiled and run with the machine's JDK (as
test_java_tokenizer.py); the Kotlin around it needs the Android SDK and is not compiled here."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pocketbert.export import ExportOptions, export_model
from pocketbert.formats.tflite import LiteRTOptions
from pocketbert.export.android_assets import write_android_assets
from pocketbert.formats import open_runner
from pocketbert.contracts.buckets import bucket_signature, pick, trimmed
from pocketbert.formats.tflite.litert import interpreter_module
from pocketbert.models import create_checkpoint
from pocketbert.models.tokenizer import load_tokenizer
from pocketbert.contracts.runner import RunnerError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
JAVA_ROOT = REPO / "android_demo" / "tokenizer" / "src"
CHECK = "dev.pocketbert.tokenizer.BucketCheck"
BUCKETS = (8, 16, 32)


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory) -> Path:
    """android_demo's pure-Java module and its checks, compiled once for this module."""
    javac = shutil.which("javac")
    assert javac and shutil.which("java"), "a JDK is required (CI installs default-jdk-headless)"
    classes = tmp_path_factory.mktemp("bucket-classes")
    sources = [str(p) for p in JAVA_ROOT.rglob("*.java")]
    compiled = subprocess.run([javac, "-encoding", "UTF-8", "-d", str(classes), *sources], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    return classes


def java(classes: Path, *args) -> list[str]:
    run = subprocess.run([shutil.which("java"), "-cp", str(classes), CHECK, *map(str, args)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stdout.splitlines()


def test_java_picks_the_bucket_python_picks(java_classes, tmp_path):
    sets = [(16, 32, 64, 128), (8, 16, 32), (3, 5), (128, 16, 64, 32, 16)]  # the last unsorted, repeated
    cases = [(buckets, length) for buckets in sets for length in range(0, max(buckets) + 20)]
    (tmp_path / "pick.txt").write_text("".join(f"{','.join(map(str, b))} {n}\n" for b, n in cases), encoding="utf-8")
    got = java(java_classes, "pick", tmp_path / "pick.txt")
    assert len(got) == len(cases)
    for (buckets, length), line in zip(cases, got):
        lengths, bucket, signature = line.split(" ")
        ordered = tuple(sorted(set(buckets)))  # as ExportSpec.for_model records them
        assert lengths == ",".join(map(str, ordered))
        try:
            expected = pick(ordered, length)
        except RunnerError:  # Python refuses longer inputs; the app has truncated them to the largest
            assert length > ordered[-1]
            expected = ordered[-1]
        assert (int(bucket), signature) == (expected, bucket_signature(expected)), (buckets, length)


def test_java_trims_sequence_outputs_as_python_does(java_classes, tmp_path):
    rng = np.random.default_rng(0)
    cases = []
    for shape, axis, keep in [((1, 16), 1, 5), ((1, 16, 4), 1, 9), ((2, 8, 3), 1, 8), ((1, 8, 3), 2, 2),
                              ((4, 2), 0, 1), ((1, 32, 7), 1, 0)]:
        values = rng.standard_normal(shape).astype(np.float32)
        cases.append((values, axis, keep))
    lines = [f"{','.join(map(str, v.shape))}\t{axis}\t{keep}\t{' '.join(repr(float(x)) for x in v.ravel())}\n"
             for v, axis, keep in cases]
    (tmp_path / "trim.txt").write_text("".join(lines), encoding="utf-8")
    got = java(java_classes, "trim", tmp_path / "trim.txt")
    for (values, axis, keep), line in zip(cases, got):
        kept = np.array([float(x) for x in line.split()], dtype=np.float32) if line else np.zeros(0, np.float32)
        np.testing.assert_array_equal(kept, trimmed(values, axis, keep).ravel())


@pytest.fixture(scope="module")
def bucketed_assets(tmp_path_factory) -> Path:
    """A bucketed feature-extraction .tflite (last_hidden_state has a sequence axis,
    pooler_output none) as `pocketbert android-assets` lays it out for the app."""
    root = tmp_path_factory.mktemp("android-buckets")
    create_checkpoint("bert", root / "checkpoint", task="feature-extraction", layers=1, seed=3)
    export_model(root / "checkpoint", None, "tflite", root / "export",
                 ExportOptions(format_options=LiteRTOptions(seq_lens=BUCKETS)))
    write_android_assets(root / "export", root / "assets")
    return root


def test_the_apps_bucketed_input_gives_the_python_runners_outputs(java_classes, bucketed_assets, tmp_path):
    assets = bucketed_assets / "assets"
    manifest = json.loads((assets / "manifest.json").read_text(encoding="utf-8"))
    # what SequenceLayout (Buckets.kt) reads: spec.buckets, and "sequence" for the axis that varies
    buckets = tuple(manifest["spec"]["buckets"])
    assert buckets == BUCKETS and all(i["shape"] == [1, "sequence"] for i in manifest["inputs"])
    axes = {o["name"]: o["shape"].index("sequence") for o in manifest["outputs"] if "sequence" in o["shape"]}
    runner = open_runner(bucketed_assets / "export")
    assert axes == runner.output_axes == {"last_hidden_state": 1}  # the runner finds them from the signatures

    texts = [("Hi", None), ("The capital of France is [MASK].", None), ("a pair of", "short sentences here"),
             ("a somewhat longer sentence about the weather in Paris and what people eat there", None),
             (" ".join(["words upon words"] * 20), None), (" ".join(["long"] * 30), " ".join(["pair"] * 30))]
    b64 = lambda s: "-" if s is None else base64.b64encode(s.encode("utf-8")).decode("ascii")  # noqa: E731
    (tmp_path / "texts.tsv").write_text("".join(f"{b64(t)}\t{b64(p)}\n" for t, p in texts), encoding="utf-8")
    got = java(java_classes, "encode", assets / "vocab.txt", ",".join(map(str, buckets)), tmp_path / "texts.tsv")

    tokenizer = load_tokenizer(bucketed_assets / "export")
    interpreter = interpreter_module().Interpreter(str(assets / "model.tflite"))
    used = set()
    for (text, pair), line in zip(texts, got):
        bucket, signature, tokens, *arrays = line.split("\t")
        ids, types, mask = ([int(x) for x in a.split(",")] for a in arrays)
        python = tokenizer(text, pair, truncation="longest_first", max_length=buckets[-1], return_token_type_ids=True)
        length = len(python["input_ids"])
        assert (int(bucket), signature, int(tokens)) == (pick(buckets, length), bucket_signature(pick(buckets, length)), length)
        padded = tokenizer(text, pair, truncation="longest_first", max_length=buckets[-1], padding="max_length",
                           return_token_type_ids=True)
        for name, values in (("input_ids", ids), ("token_type_ids", types), ("attention_mask", mask)):
            assert values == padded[name][: int(bucket)], (text, name)
        used.add(signature)
        # the signature the app names, on the app's padded input, cut back as the app cuts it
        feeds = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        outputs = interpreter.get_signature_runner(signature)(**{k: np.array([feeds[k]], dtype=np.int32) for k in runner.input_names})
        expected = runner({k: np.array([python[k]]) for k in runner.input_names})
        for name, value in expected.items():
            app = outputs[name] if name not in axes else trimmed(outputs[name], axes[name], length)
            np.testing.assert_allclose(app, value, atol=1e-5, err_msg=f"{text!r} {name}")
    assert used == {bucket_signature(n) for n in buckets}  # every bucket ran
