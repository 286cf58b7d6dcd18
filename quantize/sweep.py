"""Every recipe against float in every format: size, latency, closeness, task accuracy.

One row per (model, format, recipe, calibration file) plus the float row of each model and
format: file size, median latency (batch 1, --seq-len, --threads), agreement with the float
model (max/mean abs diff, top-1), the task's figures on real text and, with labelled data,
accuracy and its delta to float; rows on the Pareto front of size, latency and quality are
marked. Written as JSON, a Markdown table and a PNG chart (latency vs quality, marker area =
size, the front drawn). The rows are jobs (``pocketbert.executor``): in this process or on
Ray, resumable; the files are timed afterwards, together, on one machine.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from pocketbert.errors import PocketbertError
from pocketbert.models.tasks import TEXT_CLASSIFICATION, get_task
from pocketbert.quantize.recipes import RECIPES
from pocketbert.contracts.spec import DEFAULT_SEQUENCE_LENGTH


def read_labelled(path: str | Path) -> list[tuple[str, str]]:
    """(text, label) from .jsonl ({"text", "label"}) or .tsv (header with text and label);
    the reading (and its errors) is ``benchmarks.eval_data.read_classification``'s."""
    from pocketbert.quality.eval_data import read_classification

    return [(example.text, str(example.label)) for example in read_classification(path)]


@dataclass(frozen=True)
class Cell:
    """One row of a sweep: a model's file in a format, float (recipe None) or made with a
    recipe (and, for a calibrated recipe, one of the calibration files)."""

    model: str  # the model's name in the report
    format: str
    recipe: str | None
    calibration: str | None = None

    @property
    def label(self) -> str:
        return " ".join(part for part in (self.model, self.format, self.recipe or "float32", self.calibration) if part)

    def float_file(self) -> Cell:
        return Cell(self.model, self.format, None)


def sweep(model, formats, recipes, out_dir, eval_data=None, threads=1, seq_len=DEFAULT_SEQUENCE_LENGTH, runs=20, progress=True,
          task: str | None = None, eval_texts: list[str] | None = None, pool=None,
          calibration_files: list | None = None) -> list[dict]:
    """``model``: a checkpoint, or a list of them (rows per model). ``task``: the head to
    export (default: from config.json; text-classification with ``eval_data``, the only
    labelled data there is). ``eval_texts``: the sentences each file's quality against float
    is measured on (default: the held-out ones). ``calibration_files``: the calibrated recipes
    get a row per file (default: the library's calibration text). ``pool``: where the jobs run
    (``pocketbert.executor``; default in this process).

    Each row is a job recorded in ``out_dir/.jobs`` as it finishes, so running the same sweep
    again after an interruption skips what was done; the journal goes once the reports are
    written. The files are timed afterwards, all together on one machine."""
    from rich.progress import Progress

    from pocketbert.executor import InProcess, Journal, Tree, make_job
    from pocketbert.formats import get_format
    from pocketbert.models.configs import load_config
    from pocketbert.models.hub import resolve
    from pocketbert.quality import metrics as quality

    for name in recipes:
        if name not in RECIPES:
            raise PocketbertError(f"unknown recipe {name!r}")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise PocketbertError(f"{out_dir}: exists and is not a directory (the sweep writes its reports there)")
    models = _named([model] if isinstance(model, (str, Path)) else list(model))
    labelled = TEXT_CLASSIFICATION.name
    if eval_data and task not in (None, labelled):
        raise PocketbertError(f"--eval-data is labelled text for {labelled}, not for --task {task}")
    examples = None
    if eval_data:
        task = labelled
        from pocketbert.quality.eval_data import label_ids, read_classification

        examples = read_classification(eval_data)
        for path in models.values():  # labels a model does not have: before any export
            label_ids(examples, load_config(resolve(path)), eval_data)
    if calibration_files and not any(RECIPES[r].needs_calibration for r in recipes if RECIPES[r].format in formats):
        raise PocketbertError("--calibration: none of the sweep's recipes is calibrated (static ones are)")
    from pocketbert.quantize.calibration import read_texts

    for path in calibration_files or []:
        read_texts(path, what="calibration")  # an unreadable file: one line now, not a failed row per recipe
    calibrations = {name: Tree.of_file(path) for name, path in _named(calibration_files or []).items()}
    cells = []
    for name in models:
        cells += [Cell(name, fmt, None) for fmt in formats]
        for recipe in (r for r in recipes if RECIPES[r].format in formats):
            calibrated = RECIPES[recipe].needs_calibration and calibrations
            cells += [Cell(name, RECIPES[recipe].format, recipe, c) for c in calibrations] if calibrated else [
                Cell(name, RECIPES[recipe].format, recipe)]
    pool = pool or InProcess()
    journal = Journal(out_dir)
    sources = {name: Tree.of(resolve(path)) for name, path in models.items()}
    common = {"task": task, "seq_len": seq_len, "texts": list(eval_texts if eval_texts is not None else quality.default_texts()),
              "examples": examples, "eval_data": None if eval_data is None else str(eval_data)}
    outcomes = {}
    resumed = [0]  # jobs the journal had finished already
    began = time.perf_counter()
    with Progress(disable=not progress) as bar:
        counter = bar.add_task(f"sweep ({pool.description})", total=len(cells))

        def job(cell: Cell, base):
            return make_job(cell.label, f"{__name__}:quality_job", fmt=cell.format, recipe=cell.recipe, base=base,
                            calibration=calibrations.get(cell.calibration), **common)

        def still_to_run(cell: Cell, base) -> list:
            """The cell's job, unless the journal has it finished (then what follows it)."""
            planned = job(cell, base)
            done = journal.finished(planned.key)
            if done is None:
                return [planned]
            resumed[0] += 1
            return finished(done, from_journal=True)

        # float files, and the recipes that quantize the PyTorch model, start from the checkpoint;
        # the others from their format's float file, queued as soon as it is made
        from_model = [c for c in cells if c.recipe is None or get_format(c.format).quantizes == "model"]
        # calibrated recipes first: the longest jobs, so that no worker is left with one at the end
        from_file = sorted((c for c in cells if c not in from_model), key=lambda c: not RECIPES[c.recipe].needs_calibration)
        by_label = {cell.label: cell for cell in cells}

        def finished(outcome, from_journal: bool = False) -> list:
            """Each outcome recorded as it ends; a float file's recipes follow it at once (on
            workers, beside the other formats' float exports still running)."""
            outcomes[outcome.label] = outcome if from_journal else journal.record(outcome)  # the file on disk, not in memory
            bar.advance(counter)
            cell = by_label[outcome.label]
            if cell.recipe is not None:
                return []
            follow = [c for c in from_file if c.float_file() == cell]
            if not outcome.ok:
                for other in follow:
                    outcomes[other.label] = dataclasses.replace(outcome, label=other.label,
                                                                error=f"the float export failed: {outcome.error}")
                    bar.advance(counter)
                return []
            return [planned for other in follow for planned in still_to_run(other, outcome.artifact)]

        pool.run([planned for cell in from_model for planned in still_to_run(cell, sources[cell.model])], finished)
    quality_seconds = time.perf_counter() - began
    rows = _rows(cells, outcomes, pool, threads, runs)
    if examples:
        for row in rows:
            floats = [r for r in rows if (r["model"], r["format"], r["recipe"]) == (row["model"], row["format"], "float32")]
            if "accuracy" in row and floats and "accuracy" in floats[0]:
                row["accuracy_delta"] = round(row["accuracy"] - floats[0]["accuracy"], 4)
    jobs = {"executor": pool.description, "total": len(cells), "resumed": resumed[0],
            "quality_seconds": round(quality_seconds, 1), "timing_seconds": round(time.perf_counter() - began - quality_seconds, 1)}
    write_reports(rows, Path(out_dir), threads, seq_len, jobs)
    journal.remove()
    return rows


def _named(paths: list) -> dict[str, Path]:
    """Report names for paths: their last component, or the whole path when two share it."""
    names = [Path(p).name for p in paths]
    return {(Path(p).name if names.count(Path(p).name) == 1 else str(p)): Path(p) for p in paths}


def _rows(cells: list[Cell], outcomes: dict, pool, threads: int, runs: int) -> list[dict]:
    """One row per cell in the sweep's order; the files that were made, timed together on one machine."""
    from pocketbert.quantize.timing import time_on_one_machine

    made = [cell for cell in cells if outcomes[cell.label].ok]
    timing = time_on_one_machine(pool, [outcomes[cell.label].artifact for cell in made], threads, runs)
    timed = dict(zip(made, timing.value["rows"]))
    rows = []
    for cell in cells:
        outcome = outcomes[cell.label]
        row = {"model": cell.model, "format": cell.format, "recipe": cell.recipe or "float32", "calibration": cell.calibration}
        if not outcome.ok:
            rows.append({**row, "error": outcome.error})
            continue
        figures = timed[cell]
        rows.append({**row, **outcome.value,
                     "latency_median_ms": round(figures["median_ms"], 2), "latency_p90_ms": round(figures["p90_ms"], 2),
                     "noise": figures["noise"], "timed_on": f"{timing.node}: {timing.cpu}", "made_on": outcome.node,
                     "job_seconds": round(outcome.seconds, 1)})
    return rows


def quality_job(scratch: Path, fmt: str, recipe: str | None, base, calibration, task, seq_len: int, texts: list[str],
                examples, eval_data: str | None) -> tuple[dict, Path]:
    """One row's file and figures: the float export (recipe None) of the checkpoint ``base``,
    or ``recipe`` applied to ``base`` (the checkpoint, or the format's float file), calibrated
    on ``calibration`` (a file's Tree) when given."""
    import hashlib

    from pocketbert.export import ExportOptions, export_model
    from pocketbert.pipelines import pipeline
    from pocketbert.quality.eval_data import classification_accuracy
    from pocketbert.quantize import quantize_model

    source = base.unpack(scratch / "base")
    target = scratch / "file"
    if recipe is None:
        manifest = export_model(source, task, fmt, target, ExportOptions(seq_len=seq_len))
        entry = manifest.files["model"]
        closeness = {"max_abs_diff": entry.validation["max_abs_diff"], "mean_abs_diff": None, "top1_agreement": 1.0}
        real = {}
    else:
        manifest = quantize_model(source, recipe, target, task=task, seq_len=seq_len, eval_texts=texts,
                                  calibration_file=None if calibration is None else calibration.unpack_file(scratch / "calibration"),
                                  keep_below_floor=True)  # every recipe is a row
        entry = manifest.files["model"]
        closeness = next(iter(entry.agreement_with_float.values()))
        real = entry.quality or {}
    value = {
        "task": manifest.task, "size_mb": round(entry.bytes / 1e6, 2),
        "sha256": hashlib.sha256((target / entry.path).read_bytes()).hexdigest(),
        "max_abs_diff": closeness["max_abs_diff"], "mean_abs_diff": closeness["mean_abs_diff"],
        "top1_agreement": closeness["top1_agreement"],
        # real text (held-out sentences) with the task's metric; float rows are the reference
        "real_text_agreement": real.get(get_task(manifest.task).agreement, 1.0 if recipe is None else None),
        "real_text_cosine_mean": real.get("cosine_mean"),
    }
    if examples:
        value["accuracy"] = classification_accuracy(pipeline(TEXT_CLASSIFICATION.name, target, threads=1), examples, eval_data)
    return value, target


def write_reports(rows: list[dict], out_dir: Path, threads: int, seq_len: int, jobs: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pocketbert.benchmarks.report import markdown_table

    shown = "accuracy" if any("accuracy" in row for row in rows) else "real_text_agreement"
    front = pareto_front(rows, shown)
    for index, row in enumerate(rows):
        if "error" not in row:
            row["pareto_front"] = index in front
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(json.dumps({"threads": threads, "seq_len": seq_len, "jobs": jobs, "rows": rows}, indent=2) + "\n")
    columns = [c for c in ("model", "calibration") if len({row.get(c) for row in rows}) > 1]
    columns += ["format", "recipe", "size_mb", "latency_median_ms", "latency_p90_ms", "max_abs_diff", "top1_agreement",
               "real_text_agreement", "real_text_cosine_mean"]
    columns += [c for c in ("accuracy", "accuracy_delta") if any(c in row for row in rows)] + ["pareto_front"]

    lines = [markdown_table(columns, rows)]
    def named(row: dict) -> str:
        return " ".join(str(row[c]) for c in (*columns[:columns.index("format")], "format", "recipe"))

    notes = [f"- {named(row)} failed: {row['error']}" for row in rows if "error" in row]
    notes += [f"- {named(row)}: timing noisy ({'; '.join(row['noise'])})" for row in rows if row.get("noise")]
    lines += [""] + notes if notes else []
    rows = [row for row in rows if "error" not in row]
    where = f", timed on {rows[0]['timed_on']}" if rows and "timed_on" in rows[0] else ""
    ran = f"; jobs: {jobs['executor']}, {jobs['resumed']} of {jobs['total']} resumed" if jobs else ""
    (out_dir / "sweep.md").write_text(f"Quantization sweep, seq {seq_len}, {threads} thread(s){where}{ran}\n\n"
                                      + "\n".join(lines) + "\n")
    rows = [row for row in rows if row.get(shown) is not None]  # no tokenizer: no real text
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for fmt in dict.fromkeys(r["format"] for r in rows):
        chosen = [r for r in rows if r["format"] == fmt]
        axes.scatter([r["latency_median_ms"] for r in chosen], [r[shown] for r in chosen],
                     s=[max(20.0, r["size_mb"] * 3) for r in chosen], alpha=0.6, label=fmt)
        for r in chosen:
            axes.annotate(r["recipe"], (r["latency_median_ms"], r[shown]), fontsize=6)
    best = sorted((r for r in rows if r["pareto_front"]), key=lambda r: r["latency_median_ms"])
    if best:
        axes.step([r["latency_median_ms"] for r in best], [r[shown] for r in best], where="post", color="black",
                  linewidth=0.8, linestyle="--", label="Pareto front (size, latency, quality)")
    axes.set_xlabel(f"median latency (ms), seq {seq_len}, {threads} thread(s)")
    axes.set_ylabel(shown.replace("_", " "))
    axes.set_title("recipes: latency vs " + shown.replace("_", " ") + " (marker area ~ size)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out_dir / "sweep.png", dpi=120)
    plt.close(figure)


def pareto_front(rows: list[dict], quality: str) -> set[int]:
    """Indices of the rows no other row beats on size, latency and ``quality`` at once (as
    good on all three and better on one): the only rows worth choosing among."""
    figures = {index: (row["size_mb"], row["latency_median_ms"], -row[quality]) for index, row in enumerate(rows)
               if "error" not in row and row.get(quality) is not None}

    def beats(a, b) -> bool:
        return all(x <= y for x, y in zip(a, b)) and a != b

    return {i for i, mine in figures.items() if not any(beats(other, mine) for j, other in figures.items() if j != i)}
