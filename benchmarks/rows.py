"""The typed rows a protocol run produces and the report and the plot read back.

A row names what it measured by fields (protocol, model, baseline, format, threads,
recipe, task), so a reader finds the measurements behind it by those fields; labels are
display text only. ``to_dict``/``from_dict`` are the JSON layout (docs/benchmark-report.md);
``from_dict`` also reads the layout before the rename of the "runtime" column to "format".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

# the previous layout's keys -> today's: the protocol column was called "runtime"
RENAMED = {"runtime": "format", "paper_runtime": "paper_format"}


def upgraded(data: dict, renamed: dict[str, str] = RENAMED) -> dict:
    """``data`` with the previous layout's keys renamed (a key already new wins)."""
    out = dict(data)
    for old, new in renamed.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    return out


def baseline_name(protocol: dict) -> str | None:
    """How a protocol's tables and charts call its baseline: the protocol's own
    ``baseline_name``, else the architecture's name (BERT-base for a file without it)."""
    baseline = protocol.get("baseline", "bert")
    if baseline is None:
        return None
    return protocol.get("baseline_name") or ("BERT-base" if baseline == "bert" else baseline)


def _known(cls, data: dict, context: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in {**context, **upgraded(data)}.items() if k in names}


@dataclass
class SpeedupRow:
    """One (format, threads) of a protocol with a baseline: both medians and the speedup."""

    protocol: str
    model: str  # the architecture measured against ``baseline``
    baseline: str
    format: str  # a protocols.format_files() key: what was timed, not the engine that ran it
    threads: int | None
    model_ms: float | None = None
    baseline_ms: float | None = None
    speedup: float | None = None
    paper_speedup: float | None = None
    ratio_to_paper: float | None = None
    paper_format: bool = False  # the format the paper measured
    recipe: str | None = None  # the model's int8 recipe (the baseline is float)
    task: str | None = None
    noise: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, protocol: dict | None = None) -> SpeedupRow:
        """A row from JSON; an old row without its protocol's fields takes them from ``protocol``."""
        p = upgraded(protocol or {})
        context = {"protocol": p.get("name"), "model": p.get("model"), "baseline": p.get("baseline", "bert"),
                   "recipe": p.get("recipe"), "task": p.get("task")}
        return cls(**_known(cls, data, context))


@dataclass
class ScoreRow:
    """One (format, threads) of a protocol without a baseline: its statistic is the score."""

    protocol: str
    model: str
    format: str
    threads: int | None
    statistic: str = "median"
    score_ms: float | None = None
    median_ms: float | None = None
    queries: int = 0
    seconds: float | None = None
    valid: bool = False
    not_valid_because: str | None = None
    paper_format: bool = False
    recipe: str | None = None
    task: str | None = None
    noise: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, protocol: dict | None = None) -> ScoreRow:
        p = upgraded(protocol or {})
        context = {"protocol": p.get("name"), "model": p.get("model"), "recipe": p.get("recipe"), "task": p.get("task")}
        return cls(**_known(cls, data, context))


@dataclass
class ProtocolResult:
    """A protocol's run: the protocol as a dict (protocols.Protocol.to_dict), its rows, and
    the measurements behind them (kept out of ``to_dict``: the report lists them once)."""

    protocol: dict
    speedups: list[SpeedupRow] = field(default_factory=list)
    scores: list[ScoreRow] = field(default_factory=list)
    measurements: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"protocol": dict(self.protocol), "speedups": [r.to_dict() for r in self.speedups],
                "scores": [r.to_dict() for r in self.scores]}

    @classmethod
    def from_dict(cls, data: dict) -> ProtocolResult:
        p = upgraded(data.get("protocol") or {})
        return cls(p, [SpeedupRow.from_dict(r, p) for r in data.get("speedups") or []],
                   [ScoreRow.from_dict(r, p) for r in data.get("scores") or []])

    @property
    def baseline(self) -> str | None:
        return self.protocol.get("baseline", "bert")


def measured_for(m: dict, protocol: str, model: str, fmt: str, threads) -> bool:
    """Whether measurement ``m`` (a results.Measurement dict) is ``model`` timed in ``fmt`` at
    ``threads`` for ``protocol``: by the fields run_protocol stamps (``model``,
    ``protocol_format``), else, for a file without them, by architecture and format."""
    if protocol not in ((m.get("extra") or {}).get("protocols") or []) or m.get("threads") != threads:
        return False
    if m.get("model") is not None or m.get("protocol_format") is not None:
        return m.get("model") == model and m.get("protocol_format") == fmt
    return m.get("architecture") == model and fmt in (m.get("format"), m.get("runtime"))
