"""Jobs, their keys, the journal and the sweep's Pareto front, in this process (Ray's own
runs are in test_distributed.py)."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import pytest

from pocketbert.errors import PocketbertError

pytestmark = pytest.mark.unit


def write_job(scratch: Path, text: str, fail: str | None = None) -> tuple[dict, Path]:
    """A job for the tests: writes ``text`` to a file, or fails with ``fail``."""
    if fail == "user":
        raise PocketbertError("the recipe does not take this model")
    if fail == "bug":
        raise ValueError("a bug\nwith a second line")
    (scratch / "out").mkdir()
    (scratch / "out" / "file.txt").write_text(text)
    return {"length": len(text)}, scratch / "out"


def test_a_tree_is_named_by_its_content_not_its_place(tmp_path):
    from pocketbert.executor import Tree

    for place in ("a", "b"):
        (tmp_path / place / "sub").mkdir(parents=True)
        (tmp_path / place / "config.json").write_text("{}")
        (tmp_path / place / "sub" / "w.bin").write_bytes(b"\0\1")
    first, second = Tree.of(tmp_path / "a"), Tree.of(tmp_path / "b")
    assert first == second
    (tmp_path / "b" / "sub" / "w.bin").write_bytes(b"\0\2")
    assert Tree.of(tmp_path / "b").sha256 != first.sha256
    out = first.unpack(tmp_path / "out")
    assert (out / "sub" / "w.bin").read_bytes() == b"\0\1" and (out / "config.json").read_text() == "{}"
    assert Tree.of_file(tmp_path / "a" / "config.json").unpack_file(tmp_path / "one").name == "config.json"


def test_a_tree_that_points_outside_its_directory_is_refused(tmp_path):
    from pocketbert.executor import Tree

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(PocketbertError, match="outside their directory"):
        Tree("x", buffer.getvalue()).unpack(tmp_path / "in")
    assert not (tmp_path / "escaped.txt").exists()


def test_a_job_key_changes_with_what_decides_the_result_only(tmp_path):
    from pocketbert.executor import Tree, make_job

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w").write_text("1")
    tree = Tree.of(tmp_path / "m")
    job = make_job("a label", "test_executor:write_job", base=tree, text="x")
    assert make_job("another label", "test_executor:write_job", base=tree, text="x").key == job.key
    assert make_job("a label", "test_executor:write_job", base=tree, text="y").key != job.key
    (tmp_path / "m" / "w").write_text("2")
    assert make_job("a label", "test_executor:write_job", base=Tree.of(tmp_path / "m"), text="x").key != job.key


def test_in_process_jobs_give_values_files_and_one_line_errors():
    from pocketbert.executor import InProcess, make_job

    jobs = [make_job("ok", "test_executor:write_job", text="hello"),
            make_job("user", "test_executor:write_job", text="", fail="user"),
            make_job("bug", "test_executor:write_job", text="", fail="bug")]
    seen = []
    ok, user, bug = InProcess().run(jobs, seen.append)
    assert [o.label for o in seen] == ["ok", "user", "bug"]
    assert ok.value == {"length": 5} and ok.artifact is not None and ok.node and ok.cpu
    assert user.error == "the recipe does not take this model" and user.artifact is None
    assert bug.error == "ValueError: a bug"


def test_the_journal_keeps_finished_jobs_only(tmp_path):
    from pocketbert.executor import InProcess, Journal, make_job

    journal = Journal(tmp_path / "sweep")
    done, failed = InProcess().run([make_job("ok", "test_executor:write_job", text="hello"),
                                    make_job("user", "test_executor:write_job", text="", fail="user")])
    journal.record(done)
    journal.record(failed)
    assert journal.count() == 1 and journal.finished(failed.key) is None
    again = journal.finished(done.key)
    assert (again.value, again.artifact, again.label) == (done.value, done.artifact, "ok")
    # read from the record when used, not held: the bytes go to another process, the files unpack
    assert journal.record(done).artifact.stored == journal.root / done.key / "artifact.tar"
    assert pickle.loads(pickle.dumps(again.artifact)).stored == done.artifact.data
    assert sorted(p.name for p in again.artifact.unpack(tmp_path / "out").iterdir()) == \
        sorted(p.name for p in done.artifact.unpack(tmp_path / "out2").iterdir())
    (journal.root / done.key / "outcome.json").write_text("{not json")
    assert journal.finished(done.key) is None  # a damaged record: the job runs again
    assert journal.finished("../../etc") is None
    journal.remove()
    assert not journal.root.exists()


def test_the_pareto_front_keeps_the_rows_nothing_beats():
    from pocketbert.quantize.sweep import pareto_front

    rows = [{"size_mb": 100, "latency_median_ms": 10, "q": 1.0},   # float: best quality
            {"size_mb": 25, "latency_median_ms": 5, "q": 0.99},    # int8: smaller, faster
            {"size_mb": 25, "latency_median_ms": 6, "q": 0.98},    # beaten by the one above
            {"size_mb": 50, "latency_median_ms": 4, "q": 0.90},    # fastest
            {"error": "failed"},
            {"size_mb": 10, "latency_median_ms": 9, "q": None}]    # no quality: not ranked
    assert pareto_front(rows, "q") == {0, 1, 3}


def test_workers_and_a_cluster_address_are_one_or_the_other():
    from pocketbert.executor import InProcess, executor

    with pytest.raises(PocketbertError, match="not both"):
        executor(workers=2, ray_address="auto")
    assert isinstance(executor(), InProcess)
