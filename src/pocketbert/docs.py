"""docs/registry.md, written from the registries so the docs cannot drift from the code.

``python -m pocketbert.docs`` rewrites it; a test fails when the file differs from what
this renders (a format, recipe or architecture added without the docs following).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "registry.md"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _parameters(params) -> str:
    """A recipe's own parameters (``Format.recipe_params``), as ``name=value``."""
    from dataclasses import asdict

    return ", ".join(f"{name}={value}" for name, value in asdict(params).items()) or "-"


def render() -> str:
    from pocketbert.benchmarks.protocols import PROTOCOLS
    from pocketbert.formats import FORMATS
    from pocketbert.models.registry import ARCHITECTURES
    from pocketbert.models.tasks import TASKS
    from pocketbert.quantize.recipes import RECIPES

    lines = ["# What pocketbert knows", "",
             "Written by `python -m pocketbert.docs` from the registries (`models/registry.py`, `models/tasks.py`, "
             "`formats/`, each format's recipes, `benchmarks/protocols.py`); `tests/test_docs.py` fails when it is stale.", "",
             "## Architectures", ""]
    lines += _table(["architecture", "paper", "tasks"],
                    [[a.name, a.paper, ", ".join(a.tasks)] for a in ARCHITECTURES.values()])
    lines += ["", "## Tasks", "",
              "One `Task` entry each (`models/tasks.py`): how quality batches texts for it, the figures it "
              "reports on real text, the one it is gated on and that figure's floor for quantized files.", ""]
    lines += _table(["task", "texts", "figures", "agreement (floor)", "run answers"],
                    [[t.name, t.texts, ", ".join(t.figures), f"{t.agreement} ({t.floors[t.agreement]:g})",
                      t.answer_kind or "- (no pipeline)"] for t in TASKS])
    lines += ["", "## Formats", "",
              "One plugin each (`formats/<name>/`); `quantizes` says whether its recipes work on the "
              "float file or on the PyTorch model.", ""]
    lines += _table(["format", "files", "runtime", "shapes", "ids", "quantizes", "own options", "notes"],
                    [[f.name, ", ".join(f.files.values()), f.runtime, f.shapes, f.input_dtype, f.quantizes,
                      ", ".join(flag.name for flag in f.option_type.flags()) or "-", f.note]
                     for f in FORMATS.values()])
    lines += ["", "## Quantization recipes", ""]
    lines += _table(["recipe", "format", "method", "weights", "activations", "per-channel", "calibration",
                     "format parameters", "what"],
                    [[r.name, r.format, r.method.value, r.weights, r.activations, "yes" if r.per_channel else "no",
                      r.calibration or "-", _parameters(r.params), r.description] for r in RECIPES.values()])
    lines += ["", "## Latency protocols", "",
              "One `Protocol` entry each (`benchmarks/protocols.py`): the paper's setup, measured by "
              "`pocketbert bench --protocol NAME` against the protocol's baseline (none: scored by its statistic).", ""]
    lines += _table(["protocol", "model", "baseline", "paper format", "threads", "seq", "batch", "task", "recipe",
                     "scored by", "paper"],
                    [[p.name, p.model, p.baseline_name or "- (none)", p.format, str(p.threads or "all cores"),
                      str(p.seq_len), str(p.batch), p.task, p.recipe or "-",
                      (f"speedup ({p.paper_speedup:.2f}x)" if p.paper_speedup else "speedup") if p.baseline else p.statistic, p.source]
                     for p in PROTOCOLS.values()])
    return "\n".join(lines) + "\n"


def main() -> int:
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
