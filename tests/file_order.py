"""The heaviest test files first, so that the xdist workers finish together.

scripts/test.sh hands out whole files (`--dist loadfile`: a file's module fixtures run once),
and xdist by default hands out the files with the most tests first, which puts the few long
real-checkpoint tests at the end and leaves one worker idle while another runs them. Files
ordered by their measured seconds (longest first: the longest-processing-time rule) fill
the workers evenly. `pytest --store-file-seconds` records the seconds of the files a run
ran; a file not listed yet takes the median."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

SECONDS = Path(__file__).with_name("file_seconds.json")


def pytest_addoption(parser):
    parser.addoption("--store-file-seconds", action="store_true",
                     help=f"write this run's seconds per test file to {SECONDS.name} (the order of the next runs)")


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config, items):
    seconds = json.loads(SECONDS.read_text(encoding="utf-8")) if SECONDS.exists() else {}
    if not seconds:
        return
    typical = statistics.median(seconds.values())
    # a stable sort: the tests of one file keep their order
    items.sort(key=lambda item: -seconds.get(_file_of(item.nodeid), typical))


class _Recorder:
    def __init__(self):
        self.seconds: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report):
        self.seconds[_file_of(report.nodeid)] += report.duration  # setup, call and teardown

    def pytest_sessionfinish(self, session):
        """The files this run ran take its figures; the others keep theirs (a partial run
        must not make them unknown)."""
        known = json.loads(SECONDS.read_text(encoding="utf-8")) if SECONDS.exists() else {}
        merged = known | {name: round(value, 1) for name, value in self.seconds.items()}
        ordered = dict(sorted(merged.items()))
        SECONDS.write_text(json.dumps(ordered, indent=1) + "\n", encoding="utf-8")


def pytest_configure(config):
    # the controller sees every worker's reports; a worker would see only its own
    if config.getoption("--store-file-seconds") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(), "file-seconds-recorder")
