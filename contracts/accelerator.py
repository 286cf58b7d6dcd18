"""Will a file run on an accelerator? What each runtime's own checker says about one file.

Every format plugin answers ``Format.inspect(path)`` with a ``FileInspection``: the facts
an accelerator cares about (static shapes, dtypes, size) and one ``AcceleratorCheck`` per
accelerator its runtime can target. The checks come from the runtimes' own tools (LiteRT's
execution plan and GPU analyzer, onnxruntime's mobile usability checker, the .pte's own
delegate table), never from op lists kept here, so they move with the runtimes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

RAN = "ran"  # the runtime loaded the file on this accelerator here and delegated for real
STATIC = "static"  # the runtime's checker read the file; nothing ran on the accelerator
UNAVAILABLE = "unavailable"  # no checker of this accelerator can run on this machine


@dataclass
class AcceleratorCheck:
    accelerator: str  # "LiteRT GPU", "ONNX Runtime NNAPI", ...
    checker: str  # the tool that answered, as its runtime names it
    how: str  # RAN | STATIC | UNAVAILABLE
    taken: int | None = None  # nodes the accelerator takes
    of: int | None = None  # nodes in the graph
    partitions: int | None = None  # accelerator subgraphs (each one a CPU <-> accelerator hand-over)
    fallback: dict[str, int] = field(default_factory=dict)  # op type -> nodes left on the CPU
    reasons: list[str] = field(default_factory=list)  # why, in the checker's words
    notes: list[str] = field(default_factory=list)  # deprecations and advice
    measured: dict = field(default_factory=dict)  # when it ran: latency, difference to the CPU

    @property
    def fully_taken(self) -> bool:
        return self.how != UNAVAILABLE and self.of is not None and self.taken == self.of and not self.fallback

    @property
    def verdict(self) -> str:
        if self.how == UNAVAILABLE:
            return "not checked: " + (self.reasons[0] if self.reasons else "no checker here")
        if self.fully_taken:
            parts = f", {self.partitions} partition{'s' * (self.partitions != 1)}" if self.partitions else ""
            return f"fully taken ({self.taken}/{self.of} nodes{parts})"
        if self.taken == 0:
            return "falls back to the CPU entirely" + (f" ({self.reasons[0]})" if self.reasons else "")
        left = ", ".join(f"{op} x{n}" for op, n in sorted(self.fallback.items(), key=lambda kv: (-kv[1], kv[0])))
        counted = f"{self.taken}/{self.of} nodes" if self.of is not None else "partly"
        parts = f" in {self.partitions} partition{'s' * (self.partitions != 1)}" if self.partitions else ""
        return f"partial: {counted}{parts}" + (f"; on the CPU: {left}" if left else "")

    def as_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict, "fully_taken": self.fully_taken}


@dataclass
class FileInspection:
    path: str
    kind: str  # tflite, onnx, ort, torchscript-lite, executorch ...
    bytes: int
    inputs: list[dict]  # {name, shape (ints, or strings for symbolic axes), dtype}
    outputs: list[dict]
    checks: list[AcceleratorCheck] = field(default_factory=list)
    tensor_dtypes: dict[str, int] = field(default_factory=dict)  # dtype -> weight tensors
    notes: list[str] = field(default_factory=list)  # about the file as a whole (deprecations)

    @property
    def static(self) -> bool:
        return all(isinstance(n, int) for row in self.inputs + self.outputs for n in row["shape"])

    @property
    def verdict(self) -> str:
        """One line: which accelerators take the whole graph, and what stands in the way of
        the others."""
        full = [c.accelerator for c in self.checks if c.fully_taken]
        checked = [c for c in self.checks if c.how != UNAVAILABLE]
        if not checked:
            return "no accelerator checker ran" + (f"; {self.notes[0]}" if self.notes else "")
        blocked = [c for c in checked if not c.fully_taken]
        text = "runs whole on " + ", ".join(full) if full else "no accelerator takes the whole graph"
        if blocked:
            text += "; partial or CPU on " + ", ".join(c.accelerator for c in blocked)
        if not self.static:
            text += "; dynamic shapes"
        return text

    def as_dict(self) -> dict:
        data = asdict(self)
        data["checks"] = [c.as_dict() for c in self.checks]
        return {**data, "static": self.static, "verdict": self.verdict}
