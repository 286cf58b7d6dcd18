"""The record of finished jobs, so that a re-run of an interrupted experiment skips them.

Each finished job is written as it finishes, atomically, under the experiment's output
directory: ``.jobs/KEY/outcome.json`` and the directory it wrote as ``artifact.tar``. A job
that failed is not recorded (the re-run tries it again). The experiment removes its journal
once its report is written.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

from pocketbert.atomic import atomic_directory
from pocketbert.executor.jobs import Outcome, Tree

JOURNAL = ".jobs"
_KEY = re.compile(r"[0-9a-f]{64}")


class Journal:
    def __init__(self, experiment_dir: str | Path):
        self.root = Path(experiment_dir) / JOURNAL

    def finished(self, key: str) -> Outcome | None:
        """The recorded outcome of ``key``, or None (never run, failed, or unreadable)."""
        entry = self.root / key
        if not _KEY.fullmatch(key) or not (entry / "outcome.json").is_file():
            return None
        try:
            record = json.loads((entry / "outcome.json").read_text())
            artifact = entry / "artifact.tar"
            sha256 = record.pop("artifact_sha256")
            if sha256 and not artifact.is_file():
                return None
            return Outcome(**record, artifact=Tree(sha256, artifact) if sha256 else None)  # read when used
        except (OSError, ValueError, TypeError, KeyError):
            return None  # a damaged record: run the job again

    def record(self, outcome: Outcome) -> Outcome:
        """``outcome`` written down; returned with its artifact read from the record from now
        on (the bytes it came with can go). A failed job is not recorded."""
        if not outcome.ok:
            return outcome
        with atomic_directory(self.root / outcome.key, force=True) as tmp:
            fields = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome) if f.name != "artifact"}
            fields["artifact_sha256"] = outcome.artifact.sha256 if outcome.artifact else None
            (tmp / "outcome.json").write_text(json.dumps(fields) + "\n")
            if outcome.artifact is not None:
                outcome.artifact.save(tmp / "artifact.tar")
        return self.finished(outcome.key) or outcome

    def count(self) -> int:
        return sum(1 for entry in self.root.glob("*") if _KEY.fullmatch(entry.name)) if self.root.is_dir() else 0

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
