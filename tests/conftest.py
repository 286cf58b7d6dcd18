import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers.py


@pytest.fixture(scope="session")
def cli_env():
    """Environment for running the CLI in a subprocess: offline, no stray hub cache."""
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    return env


TINY_MODEL_SENTENCES = 48


@pytest.fixture(autouse=True)
def _fewer_quality_sentences(request, monkeypatch):
    """Tiny random-weight models test the wiring of the real-text quality check, not its
    figures: 48 of the 240 held-out sentences keep every quantize call in them ~5x cheaper
    (the 30522-wide MLM logits dominate). Slow tests (real weights, paper sizes) and those
    marked ``all_sentences`` measure on all of them."""
    if request.node.get_closest_marker("slow") or request.node.get_closest_marker("all_sentences"):
        return
    from pocketbert.benchmarks import quality

    texts = quality.default_texts()[:TINY_MODEL_SENTENCES]
    monkeypatch.setattr(quality, "default_texts", lambda: list(texts))
