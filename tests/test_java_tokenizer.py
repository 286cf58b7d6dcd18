"""The pure-Java code of android_demo gives Python's results: the tokenizer its ids on every
vector (the tokenizer corpus, pairs, truncation and padding settings, random text), and the
embedding code (pooling, cosine, nearest) the sentence-embedding model's vectors. Compiled and
run with the machine's JDK (CI installs Debian's default-jdk-headless when javac is missing)."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizer_corpus import pair_texts, random_texts, single_texts

from pocketbert.quality.metrics import default_texts as quality_texts

from pocketbert.models import tokenizer as tk
from pocketbert.models.vocab import build_vocab

REPO = Path(__file__).resolve().parents[1]
JAVA_ROOT = REPO / "android_demo" / "tokenizer" / "src"
STRATEGIES = {"longest_first": "LONGEST_FIRST", "only_first": "ONLY_FIRST", "only_second": "ONLY_SECOND"}


def b64(text: str | None) -> str:
    return "-" if text is None else base64.b64encode(text.encode("utf-8")).decode("ascii")


def vector(tokenizer, text, pair=None, max_length=0, strategy=None, pad=False) -> str:
    kwargs = {"return_token_type_ids": True}
    if strategy:
        kwargs.update(truncation=strategy, max_length=max_length)
    if pad:
        kwargs.update(padding="max_length", max_length=max_length)
    try:
        e = tokenizer(text, pair, **kwargs)
        expected = "\t".join(",".join(map(str, e[k])) for k in ("input_ids", "token_type_ids", "attention_mask"))
    except tk.TokenizerError:
        expected = "ERROR"
    fields = [b64(text), b64(pair), str(max_length), STRATEGIES.get(strategy, "NONE"), "PAD" if pad else "NOPAD"]
    return "\t".join(fields) + "\t" + expected


def write_vectors(tokenizer, path: Path) -> int:
    lines = [vector(tokenizer, t) for t in single_texts()]
    lines += [vector(tokenizer, a, b) for a, b in pair_texts()]
    for strategy in STRATEGIES:
        for max_length in (6, 16, 40):
            lines += [vector(tokenizer, a, b, max_length, strategy) for a, b in pair_texts()]
            lines += [vector(tokenizer, t, None, max_length, strategy) for t in single_texts()[::5]]
    lines += [vector(tokenizer, t, None, 64, "longest_first", pad=True) for t in single_texts()[::3]]
    lines += [vector(tokenizer, t) for t in random_texts(600, seed=1)]
    randoms = random_texts(200, seed=2)
    lines += [vector(tokenizer, a, b, 32, "longest_first", pad=True) for a, b in zip(randoms[::2], randoms[1::2])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def run_java(tmp_path: Path, main_class: str, *args) -> subprocess.CompletedProcess:
    """Compile android_demo's pure-Java module (and its checks) and run one check."""
    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "a JDK is required (CI installs default-jdk-headless)"
    sources = [str(p) for p in JAVA_ROOT.rglob("*.java")]
    compiled = subprocess.run([javac, "-encoding", "UTF-8", "-d", str(tmp_path / "classes"), *sources],
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    return subprocess.run([java, "-cp", str(tmp_path / "classes"), main_class, *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.integration
def test_java_tokenizer_matches_python_on_every_vector(tmp_path):
    vocab = {t: i for i, t in enumerate(build_vocab(30522))}
    tokenizer = tk.BertTokenizerFast(vocab)
    tokenizer.save_vocabulary(tmp_path)
    count = write_vectors(tokenizer, tmp_path / "vectors.tsv")
    run = run_java(tmp_path, "dev.pocketbert.tokenizer.ParityCheck", tmp_path / "vocab.txt", tmp_path / "vectors.tsv")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"checked {count} vectors, 0 mismatches" in run.stdout
    assert count > 3000


@pytest.mark.slow
def test_java_pooling_and_ranking_match_python_on_real_embeddings(minilm, tmp_path):
    """The app's Embeddings.java (mean pooling of a feature-extraction graph's token states,
    normalisation, cosine, nearest) against the sentence-embedding model's own vectors."""
    from pocketbert.models import load_model
    from pocketbert.models.tokenizer import load_tokenizer
    from pocketbert.pipelines import cosine_similarity

    sentences = quality_texts()[:12]
    tokenizer = load_tokenizer(minilm)
    encoder, embedder = load_model(minilm, task="feature-extraction"), load_model(minilm, task="sentence-embedding")
    lines = [f"sentences {len(sentences)} hidden {encoder.config.hidden_size}"]
    pooled = []
    for text in sentences:
        encoding = tokenizer(text, padding="max_length", max_length=48, return_tensors="pt")
        inputs = {name: encoding[name] for name in encoder.input_names}
        with torch.inference_mode():
            tokens = encoder(**inputs).last_hidden_state[0]  # [S, H], padding included
            vector = embedder(**inputs).sentence_embedding[0].numpy()
        pooled.append(vector)
        lines += ["mask " + " ".join(map(str, encoding["attention_mask"][0].tolist())),
                  "tokens " + " ".join(f"{v:.9g}" for v in tokens.flatten().tolist()),
                  "pooled " + " ".join(f"{v:.9g}" for v in vector.tolist())]
    similarity = cosine_similarity(np.array(pooled, dtype=np.float64))
    lines += ["similarity " + " ".join(f"{v:.9g}" for v in row) for row in similarity]
    for i, row in enumerate(similarity):
        order = [j for j in np.argsort(-row, kind="stable") if j != i][:3]
        lines.append("nearest " + " ".join(map(str, order)))
    (tmp_path / "embeddings.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = run_java(tmp_path, "dev.pocketbert.embedding.EmbeddingCheck", tmp_path / "embeddings.txt")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"checked {len(sentences)} sentences, 0 mismatches" in run.stdout
