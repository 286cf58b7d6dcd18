"""Checkpoints: ``create`` one, list the ``architectures``, describe one (``info``)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pocketbert.api.checks import checked, positive
from pocketbert.api.result import Result
from pocketbert.contracts.options import at_least


@dataclass(frozen=True)
class Checkpoint(Result):
    directory: Path
    model_class: str
    layers: int
    parameters: int
    seed: int
    seconds: float

    def lines(self) -> list[str]:
        return [f"wrote {self.directory}: {self.model_class}, {self.layers} layers, "
                f"{self.parameters / 1e6:.2f}M parameters, seed {self.seed} ({self.seconds:.1f} s)"]

    def records(self) -> list[dict]:
        return [{**asdict(self), "directory": str(self.directory)}]


def create(arch: str, out_dir: str | Path, task: str | None = None, layers: int | None = None, seed: int = 0,
           vocab: str | Path | None = None, force: bool = False) -> Checkpoint:
    """A paper-size checkpoint of ``arch`` with random weights (deterministic per seed): the
    model benchmarks and demos use where nothing can be downloaded."""
    from pocketbert.models import create_checkpoint

    layers, seed = positive("layers", layers), checked("seed", seed, at_least(0))
    start = time.perf_counter()
    model = create_checkpoint(arch, out_dir, task, layers, seed, force, vocab_file=vocab)
    return Checkpoint(Path(out_dir), type(model).__name__, model.config.num_hidden_layers, model.num_parameters(), seed,
                      round(time.perf_counter() - start, 3))


@dataclass(frozen=True)
class Architectures(Result):
    rows: tuple[dict, ...]

    def names(self) -> list[str]:
        return [row["architecture"] for row in self.rows]

    def lines(self) -> list[str]:
        out = [f"{'architecture':<12} {'params (M)':>10} {'paper (M)':>12}  {'ok':<3} {'paper':<30} tasks"]
        for r in self.rows:
            low, high = r["paper_params_millions"]
            out.append(f"{r['architecture']:<12} {r['params_millions']:>10.2f} {f'{low}-{high}':>12}  "
                       f"{'yes' if r['matches_paper'] else 'NO':<3} {r['paper']:<30} {', '.join(r['tasks'])}")
        return out

    def records(self) -> list[dict]:
        return [dict(row) for row in self.rows]


def architectures() -> Architectures:
    """Every registered architecture, its tasks and its parameter count against its paper's."""
    from pocketbert.models.summary import architecture_summaries

    return Architectures(tuple(architecture_summaries()))


@dataclass(frozen=True)
class ModelInfo(Result):
    model_class: str
    model_type: str
    task: str
    layers: int
    parameters: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    vocabulary: int
    checkpoint: str

    def as_dict(self) -> dict:
        """The CLI's ``info --json`` keys."""
        found = asdict(self)
        found["class"] = found.pop("model_class")
        return {"class": found.pop("class"), **{k: list(v) if isinstance(v, tuple) else v for k, v in found.items()}}

    def lines(self) -> list[str]:
        return [f"{key:<11} {', '.join(value) if isinstance(value, list) else value}" for key, value in self.as_dict().items()]

    def records(self) -> list[dict]:
        return [self.as_dict()]


def info(model: str | Path, task: str | None = None) -> ModelInfo:
    """Load ``model`` strictly (every weight checked against the architecture, the tokenizer
    as run and export load it) and describe it."""
    from pocketbert.models import load_model
    from pocketbert.models.tokenizer import load_tokenizer

    loaded = load_model(model, task=task)
    tokenizer = load_tokenizer(loaded.checkpoint_dir)
    return ModelInfo(type(loaded).__name__, loaded.config.model_type, loaded.task, loaded.config.num_hidden_layers,
                     loaded.num_parameters(), tuple(loaded.input_names), tuple(loaded.output_names), len(tokenizer),
                     str(loaded.checkpoint_dir))
