"""Every recipe against float in every format: size, latency, closeness, task accuracy.

One row per (format, recipe) plus the float row of each format: file size, median latency
(batch 1, --seq-len, --threads), agreement with the float model (max/mean abs diff, top-1)
and, with labelled data, accuracy and its delta to float. Written as JSON, a Markdown table
and a PNG Pareto chart (latency vs accuracy, marker area = size).
"""

from __future__ import annotations

import dataclasses
import json
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


def sweep(model, formats, recipes, out_dir, eval_data=None, threads=1, seq_len=DEFAULT_SEQUENCE_LENGTH, runs=20, progress=True,
          task: str | None = None, eval_texts: list[str] | None = None, pool=None) -> list[dict]:
    """``task``: the head to export (default: from config.json; text-classification with
    ``eval_data``, the only labelled data there is). ``eval_texts``: the sentences each
    file's quality against float is measured on (default: the held-out ones). ``pool``:
    where the jobs run (``pocketbert.executor``; default in this process).

    Each (format, recipe) is a job recorded in ``out_dir/.jobs`` as it finishes, so running the
    same sweep again after an interruption skips what was done; the journal goes once the
    reports are written. The files are timed afterwards, all together on one machine."""
    from rich.progress import Progress

    from pocketbert.executor import InProcess, Journal, Tree, make_job
    from pocketbert.formats import get_format
    from pocketbert.models.hub import resolve
    from pocketbert.quality import metrics as quality

    for name in recipes:
        if name not in RECIPES:
            raise PocketbertError(f"unknown recipe {name!r}")
    labelled = TEXT_CLASSIFICATION.name
    if eval_data and task not in (None, labelled):
        raise PocketbertError(f"--eval-data is labelled text for {labelled}, not for --task {task}")
    examples = None
    if eval_data:
        task = labelled
        from pocketbert.quality.eval_data import label_ids, read_classification
        from pocketbert.models.configs import load_config

        examples = read_classification(eval_data)
        label_ids(examples, load_config(resolve(model)), eval_data)  # labels the model does not have: before any export
    pool = pool or InProcess()
    journal = Journal(out_dir)
    source = Tree.of(resolve(model))
    common = {"task": task, "seq_len": seq_len, "texts": list(eval_texts if eval_texts is not None else quality.default_texts()),
              "examples": examples, "eval_data": None if eval_data is None else str(eval_data)}

    def job(fmt: str, recipe: str | None, base: Tree):
        return make_job(f"{fmt} {recipe or 'float32'}", f"{__name__}:quality_job", fmt=fmt, recipe=recipe, base=base, **common)

    outcomes = {}
    resumed = [0]  # jobs the journal had finished already
    with Progress(disable=not progress) as bar:
        total = len(formats) + sum(RECIPES[r].format in formats for r in recipes)
        counter = bar.add_task(f"sweep ({pool.description})", total=total)

        def run(jobs: list) -> None:
            """Finished jobs from the journal, the others on the pool, each recorded as it ends."""
            def finished(outcome) -> None:
                journal.record(outcome)
                outcomes[outcome.label] = outcome
                bar.advance(counter)

            waiting = []
            for each in jobs:
                done = journal.finished(each.key)
                if done is None:
                    waiting.append(each)
                else:
                    outcomes[each.label] = done
                    bar.advance(counter)
            resumed[0] += len(jobs) - len(waiting)
            pool.run(waiting, finished)

        # recipes that quantize the PyTorch model start from it, the others from the format's float file
        run([job(fmt, None, source) for fmt in formats]
            + [job(RECIPES[r].format, r, source) for r in recipes
               if RECIPES[r].format in formats and get_format(RECIPES[r].format).quantizes == "model"])
        second = []
        for r in recipes:
            fmt = RECIPES[r].format
            if fmt in formats and get_format(fmt).quantizes != "model":
                base = outcomes[f"{fmt} float32"]
                if base.ok:
                    second.append(job(fmt, r, base.artifact))
                else:
                    outcomes[f"{fmt} {r}"] = dataclasses.replace(base, label=f"{fmt} {r}", error=f"the float export failed: {base.error}")
                    bar.advance(counter)
        run(second)
    rows = _rows(formats, recipes, outcomes, pool, threads, runs)
    if examples:
        base_accuracy = {r["format"]: r["accuracy"] for r in rows if r["recipe"] == "float32" and "accuracy" in r}
        for row in rows:
            if "accuracy" in row and row["format"] in base_accuracy:
                row["accuracy_delta"] = round(row["accuracy"] - base_accuracy[row["format"]], 4)
    jobs = {"executor": pool.description, "total": total, "resumed": resumed[0]}
    write_reports(rows, Path(out_dir), threads, seq_len, jobs)
    journal.remove()
    return rows


def _rows(formats, recipes, outcomes: dict, pool, threads: int, runs: int) -> list[dict]:
    """One row per job in the sweep's order; the files that were made, timed together on one machine."""
    from pocketbert.executor import make_job

    order = [(fmt, "float32") for fmt in formats] + [(RECIPES[r].format, r) for r in recipes if RECIPES[r].format in formats]
    made = [(fmt, recipe) for fmt, recipe in order if outcomes[f"{fmt} {recipe}"].ok]
    timing = pool.run_exclusive(make_job("timing", f"{__name__}:timing_job", threads=threads, runs=runs,
                                         files=[outcomes[f"{fmt} {recipe}"].artifact for fmt, recipe in made]))
    if not timing.ok:
        raise PocketbertError(f"timing the sweep's files failed: {timing.error}")
    timed = dict(zip(made, timing.value["rows"]))
    rows = []
    for fmt, recipe in order:
        outcome = outcomes[f"{fmt} {recipe}"]
        if not outcome.ok:
            rows.append({"format": fmt, "recipe": recipe, "error": outcome.error})
            continue
        figures = timed[fmt, recipe]
        rows.append({"format": fmt, "recipe": recipe, **outcome.value,
                     "latency_median_ms": round(figures["median_ms"], 2), "latency_p90_ms": round(figures["p90_ms"], 2),
                     "noise": figures["noise"], "timed_on": f"{timing.node}: {timing.cpu}", "made_on": outcome.node})
    return rows


def quality_job(scratch: Path, fmt: str, recipe: str | None, base, task, seq_len: int, texts: list[str],
                examples, eval_data: str | None) -> tuple[dict, Path]:
    """One row's file and figures: the float export (recipe None) of the checkpoint ``base``,
    or ``recipe`` applied to ``base`` (the checkpoint, or the format's float file)."""
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


def timing_job(scratch: Path, files: list, threads: int, runs: int) -> tuple[dict, None]:
    """Every file of the sweep timed in alternated rounds, batch 1 and full length, on this machine."""
    from pocketbert.quantize.timing import time_files

    directories = [tree.unpack(scratch / f"file{index}") for index, tree in enumerate(files)]
    rounds = 3
    return {"rows": time_files(directories, threads, runs=max(3, -(-runs // rounds)), rounds=rounds)}, None


def write_reports(rows: list[dict], out_dir: Path, threads: int, seq_len: int, jobs: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pocketbert.benchmarks.report import markdown_table

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(json.dumps({"threads": threads, "seq_len": seq_len, "jobs": jobs, "rows": rows}, indent=2) + "\n")
    columns = ["format", "recipe", "size_mb", "latency_median_ms", "latency_p90_ms", "max_abs_diff", "top1_agreement",
               "real_text_agreement", "real_text_cosine_mean"]
    columns += [c for c in ("accuracy", "accuracy_delta") if any(c in row for row in rows)]

    lines = [markdown_table(columns, rows)]
    notes = [f"- {row['format']} {row['recipe']} failed: {row['error']}" for row in rows if "error" in row]
    notes += [f"- {row['format']} {row['recipe']}: timing noisy ({'; '.join(row['noise'])})" for row in rows if row.get("noise")]
    lines += [""] + notes if notes else []
    rows = [row for row in rows if "error" not in row]
    where = f", timed on {rows[0]['timed_on']}" if rows and "timed_on" in rows[0] else ""
    ran = f"; jobs: {jobs['executor']}, {jobs['resumed']} of {jobs['total']} resumed" if jobs else ""
    (out_dir / "sweep.md").write_text(f"Quantization sweep, seq {seq_len}, {threads} thread(s){where}{ran}\n\n"
                                      + "\n".join(lines) + "\n")
    shown = "accuracy" if "accuracy" in rows[0] else "real_text_agreement"
    rows = [row for row in rows if row.get(shown) is not None]  # no tokenizer: no real text
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for fmt in dict.fromkeys(r["format"] for r in rows):
        chosen = [r for r in rows if r["format"] == fmt]
        axes.scatter([r["latency_median_ms"] for r in chosen], [r[shown] for r in chosen],
                     s=[max(20.0, r["size_mb"] * 3) for r in chosen], alpha=0.6, label=fmt)
        for r in chosen:
            axes.annotate(r["recipe"], (r["latency_median_ms"], r[shown]), fontsize=6)
    axes.set_xlabel(f"median latency (ms), seq {seq_len}, {threads} thread(s)")
    axes.set_ylabel(shown.replace("_", " "))
    axes.set_title("recipes: latency vs " + shown.replace("_", " ") + " (marker area ~ size)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out_dir / "sweep.png", dpi=120)
    plt.close(figure)
