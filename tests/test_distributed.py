"""Experiments on Ray: the same figures and bytes as in this process, a killed worker's job
retried with nothing left behind, an interrupted sweep resumed.

One private local Ray of two workers serves the module (it takes ~7 s to start); its
workers and this process keep their scratch in a TMPDIR of their own, which must be empty
after every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

# full_calibration: the Ray workers are other processes, which calibrate on every example; the
# in-process runs they are compared with must too
pytestmark = [pytest.mark.integration, pytest.mark.full_calibration]

SEQ = 16
FORMATS = ["onnx"]
RECIPES = ["onnx-dynamic-int8", "onnx-static-int8-minmax"]
# what must not change with where a job ran (latency does, and is measured apart)
FIGURES = ("format", "recipe", "sha256", "size_mb", "max_abs_diff", "mean_abs_diff", "top1_agreement",
           "real_text_agreement", "real_text_cosine_mean", "error")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A TMPDIR of this module's own, for this process and the Ray workers it starts."""
    path = Path(tempfile.mkdtemp(prefix="pb-", dir="/tmp"))  # short: Ray's socket paths start under it
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(path)
    tempfile.tempdir = None
    yield path
    if saved is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved
    tempfile.tempdir = None
    (path / ".ses").unlink(missing_ok=True)
    os.rmdir(path)  # empty, or the test that left something fails here


def leftovers(scratch: Path) -> list[Path]:
    """What is in ``scratch`` but onnxruntime's own .ses (a session id it writes to TMPDIR on
    import) and the running pool's Ray directory (pbray-*, checked after the pool closes)."""
    return [p for p in scratch.iterdir() if p.name != ".ses" and not p.name.startswith("pbray-")]


@pytest.fixture(scope="module")
def pool(scratch):
    from pocketbert.executor import RayPool

    with RayPool(workers=2) as ray_pool:
        yield ray_pool
    assert not [p for p in scratch.iterdir() if p.name != ".ses"], "Ray or a job left files in TMPDIR"


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return tiny_checkpoint("mobilebert", "fill-mask", seed=7)


@pytest.fixture(scope="module")
def texts():
    from pocketbert.quality import metrics as quality

    return quality.default_texts()[:24]


def sweep_rows(model, out: Path, texts, pool=None) -> list[dict]:
    from pocketbert.quantize.sweep import sweep

    rows = sweep(model, FORMATS, RECIPES, out, threads=1, seq_len=SEQ, runs=3, progress=False,
                 eval_texts=texts, pool=pool)
    return [{k: row.get(k) for k in FIGURES} for row in rows]


@pytest.fixture(scope="module")
def in_process(model, texts, tmp_path_factory, scratch):
    rows = sweep_rows(model, tmp_path_factory.mktemp("in-process"), texts)
    assert not leftovers(scratch)
    return rows


@contextlib.contextmanager
def one_worker_killed(scratch: Path):
    """SIGKILL to the first Ray worker seen running a job (its scratch: pocketbert-job-PID-...)."""
    killed: list[int] = []
    stop = threading.Event()

    def kill_one() -> None:
        while not stop.is_set() and not killed:
            for entry in scratch.glob("pocketbert-job-*"):
                pid = int(re.match(r"pocketbert-job-(\d+)-", entry.name).group(1))
                if pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one)
    killer.start()
    try:
        yield killed
    finally:
        stop.set()
        killer.join()


def test_two_workers_give_the_in_process_figures_and_files_though_one_is_killed(model, texts, in_process, pool,
                                                                                tmp_path, scratch):
    """The killed worker's job is run again; nothing of it is left (its scratch included)."""
    out = tmp_path / "sweep"
    with one_worker_killed(scratch) as killed:
        rows = sweep_rows(model, out, texts, pool)
    assert killed, "no job was caught running"
    assert rows == in_process
    assert all(row["error"] is None for row in in_process) and len(in_process) == 1 + len(RECIPES)
    report = json.loads((out / "sweep.json").read_text())
    assert {k: report["jobs"][k] for k in ("executor", "total", "resumed")} == {
        "executor": "a local Ray of 2 workers", "total": 3, "resumed": 0}
    assert all(row["timed_on"] and row["made_on"] for row in report["rows"])
    assert not (out / ".jobs").exists()  # the journal goes with a finished sweep
    assert not leftovers(scratch)


def test_an_interrupted_sweep_resumes_where_it_stopped(model, texts, in_process, tmp_path, cli_env):
    """Ctrl-C to `pocketbert quantize-sweep` once a job is recorded; the same command again
    skips the recorded jobs and gives the same figures."""
    (tmp_path / "eval.txt").write_text("\n".join(texts) + "\n")
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "pocketbert.cli", "quantize-sweep", str(model), "--formats", *FORMATS,
               "--recipes", *RECIPES, "--seq-len", str(SEQ), "--runs", "3", "--eval-text", str(tmp_path / "eval.txt"),
               "-o", str(out)]
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env)
    journal = out / ".jobs"
    while running.poll() is None and not any(len(p.name) == 64 for p in journal.glob("*")):
        time.sleep(0.02)
    running.send_signal(signal.SIGINT)
    _, stderr = running.communicate(timeout=120)
    assert running.returncode != 0, "the sweep ended before it could be interrupted"
    assert len(stderr.strip().splitlines()) == 1, stderr
    recorded = sum(1 for p in journal.iterdir() if len(p.name) == 64)
    assert 1 <= recorded < 3 and not [p for p in journal.iterdir() if len(p.name) != 64]  # no half-written record

    again = subprocess.run(command, capture_output=True, text=True, env=cli_env)
    assert again.returncode == 0, again.stderr
    report = json.loads((out / "sweep.json").read_text())
    assert report["jobs"]["resumed"] == recorded
    assert [{k: row.get(k) for k in FIGURES} for row in report["rows"]] == in_process
    assert not journal.exists()


def test_a_target_search_on_two_workers_makes_the_in_process_files(model, texts, in_process, pool, tmp_path,
                                                                    scratch):
    """Every candidate the search made on the workers has the bytes the in-process sweep's
    file of its recipe has (the same model, recipe, length and calibration; the figures on
    the same text are compared in the sweep tests above, and the search measures on half of
    it), and the search writes the candidate it chose."""
    from pocketbert.contracts.artifact import sha256
    from pocketbert.quantize.target import quantize_to_target

    out = tmp_path / "workers"
    manifest = quantize_to_target(model, "onnx", "agreement>=0.5", out, seq_len=SEQ, eval_texts=texts,
                                  recipe_names=RECIPES, pool=pool)
    found = manifest.quantization["target_search"]
    chosen, = [row for row in found["candidates"] if row["candidate"] == found["chosen"]]
    assert sha256(out / "model.onnx") == chosen["sha256"]
    made_here = {row["recipe"]: row["sha256"] for row in in_process}
    assert {row["recipe"]: row["sha256"] for row in found["candidates"]} == {name: made_here[name] for name in RECIPES}
    assert len({row["sha256"] for row in found["candidates"]}) == len(RECIPES)
    assert not leftovers(scratch)
