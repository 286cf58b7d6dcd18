"""Jobs: the independent units of an experiment, and what running one gives back.

A sweep or a target search is a queue of (export, quantize, measure on real text) jobs. A
job names a function by import path and passes it only plain values and directory trees as
bytes, so the same job runs the same way in this process or in a Ray worker on another
machine with no shared file system. Its key is a hash of everything that decides its
result, which is what a re-run of an interrupted sweep looks finished jobs up by.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import io
import json
import shutil
import socket
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pocketbert.errors import PocketbertError, first_line


@dataclass(frozen=True, eq=False)
class Tree:
    """A directory (a checkpoint, an export) as tar bytes, named by its content's hash.
    ``stored``: the bytes, or a tar file on this machine (a journal's record), read only when
    the tree is unpacked or sent to another process: a sweep of many files holds paths, not
    gigabytes (its in-process peak was 6 GB with every file's bytes kept)."""

    sha256: str
    stored: bytes | Path = field(repr=False)

    def __eq__(self, other) -> bool:  # the content hash is what a tree is, wherever it is kept
        return isinstance(other, Tree) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    @property
    def data(self) -> bytes:
        return self.stored.read_bytes() if isinstance(self.stored, Path) else self.stored

    def __reduce__(self):
        """To another process (a Ray worker, the object store): the bytes, not a path it cannot see."""
        return (Tree, (self.sha256, self.data))

    def save(self, path: str | Path) -> None:
        if isinstance(self.stored, Path):
            shutil.copyfile(self.stored, path)
        else:
            Path(path).write_bytes(self.stored)

    @classmethod
    def of(cls, directory: str | Path) -> Tree:
        directory = Path(directory)
        return cls._packed((p.relative_to(directory).as_posix(), p) for p in sorted(directory.rglob("*")) if p.is_file())

    @classmethod
    def of_file(cls, path: str | Path) -> Tree:
        """One file, unpacked under its own name (a calibration text)."""
        return cls._packed([(Path(path).name, Path(path))])

    @classmethod
    def _packed(cls, members) -> Tree:
        buffer = io.BytesIO()
        digest = hashlib.sha256()
        # sorted names and no owners or times: the same files give the same bytes and hash
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name, path in members:
                content = path.read_bytes()
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
                digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
        return cls(digest.hexdigest(), buffer.getvalue())

    def unpack(self, directory: str | Path) -> Path:
        """Into ``directory`` (made if missing); member paths that would leave it are refused."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        opened = tarfile.open(self.stored) if isinstance(self.stored, Path) else tarfile.open(fileobj=io.BytesIO(self.stored))
        with opened as archive:
            try:
                archive.extractall(directory, filter="data")
            except tarfile.FilterError as exc:
                raise PocketbertError(f"a job's files point outside their directory: {exc}") from None
        return directory

    def unpack_file(self, directory: str | Path) -> Path:
        """A Tree of one file (``of_file``) unpacked: the file's path."""
        files = [p for p in self.unpack(directory).rglob("*") if p.is_file()]
        if len(files) != 1:
            raise PocketbertError(f"expected one file in a job's input, found {len(files)}")
        return files[0]


@dataclass(frozen=True)
class Job:
    key: str  # sha256 of what decides the result (job_key)
    label: str  # how tables and progress name it: "onnx onnx-dynamic-int8"
    function: str  # "package.module:function", called as function(scratch_dir, **arguments)
    arguments: dict  # plain values and Trees


@dataclass
class Outcome:
    """One job's result: ``value`` (plain values), the directory it wrote as a Tree, or the
    one-line error it failed with; where it ran and how long it took."""

    key: str
    label: str
    value: dict | None = None
    artifact: Tree | None = None
    error: str | None = None
    node: str = ""
    cpu: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def job_key(function: str, **parts) -> str:
    """The hash of a job's function and arguments; Trees count by their content's hash, so the
    key does not change with where a checkpoint lies."""
    from pocketbert import __version__

    def plain(value):
        if isinstance(value, Tree):
            return {"tree": value.sha256}
        if dataclasses.is_dataclass(value):
            return plain(dataclasses.asdict(value))
        if isinstance(value, dict):
            return {k: plain(v) for k, v in sorted(value.items())}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    text = json.dumps({"function": function, "version": __version__, "arguments": plain(parts)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def make_job(label: str, function: str, **arguments) -> Job:
    return Job(job_key(function, **arguments), label, function, arguments)


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    from pocketbert.benchmarks.harness import available_cores
    from pocketbert.benchmarks.report import cpu_isa, cpu_model

    return f"{cpu_model()} ({', '.join(cpu_isa()) or 'no SIMD flags'}), {available_cores()} cores"


def run_job(job: Job, threads: int | None = None) -> Outcome:
    """Run ``job`` here in a private scratch directory that is gone afterwards: its value, or
    its failure as one line (a job failing for good is a row of the report, not the end of the
    experiment). ``threads``: the math threads it may use (torch's and every runner's it opens),
    set explicitly for every job (a Ray worker would otherwise keep the count of its first task)."""
    import torch

    from pocketbert.formats import set_process_threads

    torch_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    runner_threads = set_process_threads(threads)  # onnxruntime and LiteRT take every core otherwise
    try:
        return _run(job)
    finally:
        torch.set_num_threads(torch_threads)
        set_process_threads(runner_threads)


def _run(job: Job) -> Outcome:
    from pocketbert.atomic import work_directory

    begin = time.perf_counter()
    outcome = Outcome(job.key, job.label, node=socket.gethostname(), cpu=cpu_name())
    module_name, function_name = job.function.split(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        with work_directory("job") as scratch:
            value, written = function(scratch, **job.arguments)
            outcome.value = value
            outcome.artifact = None if written is None else Tree.of(written)
    except PocketbertError as exc:
        outcome.error = str(exc)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - a job's bug is reported in its row, the others go on
        outcome.error = f"{type(exc).__name__}: {first_line(exc)}"
    outcome.seconds = time.perf_counter() - begin
    return outcome
