"""Every recipe against float in every format: size, latency, closeness, task accuracy.

One row per (format, recipe) plus the float row of each format: file size, median latency
(batch 1, --seq-len, --threads), agreement with the float model (max/mean abs diff, top-1)
and, with labelled data, accuracy and its delta to float. Written as JSON, a Markdown table
and a PNG Pareto chart (latency vs accuracy, marker area = size).
"""

from __future__ import annotations

import json
from pathlib import Path

from pocketbert.atomic import work_directory
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
          task: str | None = None, eval_texts: list[str] | None = None) -> list[dict]:
    """``task``: the head to export (default: from config.json; text-classification with
    ``eval_data``, the only labelled data there is). ``eval_texts``: the sentences each
    file's quality against float is measured on (default: the held-out ones)."""
    from rich.progress import Progress

    from pocketbert.benchmarks import latency
    from pocketbert.quality.eval_data import classification_accuracy
    from pocketbert.formats import get_format, open_runner
    from pocketbert.export import ExportOptions, export_model
    from pocketbert.pipelines import pipeline
    from pocketbert.quantize import quantize_model

    for name in recipes:
        if name not in RECIPES:
            raise PocketbertError(f"unknown recipe {name!r}")
    chosen = [(fmt, None) for fmt in formats] + [(RECIPES[r].format, r) for r in recipes if RECIPES[r].format in formats]
    data = None
    labelled = TEXT_CLASSIFICATION.name
    if eval_data and task not in (None, labelled):
        raise PocketbertError(f"--eval-data is labelled text for {labelled}, not for --task {task}")
    if eval_data:
        task = labelled
        from pocketbert.quality.eval_data import label_ids, read_classification
        from pocketbert.models.checkpoint import resolve
        from pocketbert.models.configs import load_config

        data = read_classification(eval_data)
        label_ids(data, load_config(resolve(model)), eval_data)  # labels the model does not have: before any export
    rows = []
    with work_directory("sweep") as work, Progress(disable=not progress) as bar:
        progress_row = bar.add_task("sweep", total=len(chosen))
        floats = {}
        for fmt, recipe in chosen:
            bar.update(progress_row, description=f"{fmt} {recipe or 'float32'}")
            target = Path(work) / f"{fmt}-{recipe or 'float32'}"
            if recipe is None:
                manifest = export_model(model, task, fmt, target, ExportOptions(seq_len=seq_len))
                floats[fmt] = target
                entry = manifest.files["model"]
                closeness = {"max_abs_diff": entry.validation["max_abs_diff"], "mean_abs_diff": None,
                             "top1_agreement": 1.0}
                real = {}
            else:
                # recipes that quantize the PyTorch model start from it, the others from the float file
                base = model if get_format(fmt).quantizes == "model" else floats[fmt]
                try:
                    manifest = quantize_model(base, recipe, target, task=task, seq_len=seq_len, eval_texts=eval_texts,
                                              keep_below_floor=True)  # every recipe is a row
                except PocketbertError as exc:  # one recipe failing is a result, not the end of the sweep
                    rows.append({"format": fmt, "recipe": recipe, "error": str(exc)})
                    bar.advance(progress_row)
                    continue
                entry = manifest.files["model"]
                closeness = next(iter(entry.agreement_with_float.values()))
                real = entry.quality or {}
            runner = open_runner(target, threads=threads)
            inputs = _timing_inputs(runner, target)
            timing = latency.measure(runner, inputs, runs=runs)
            row = {
                "format": fmt, "recipe": recipe or "float32", "size_mb": round(entry.bytes / 1e6, 2),
                "latency_median_ms": round(timing["median_ms"], 2), "latency_p90_ms": round(timing["p90_ms"], 2),
                "max_abs_diff": closeness["max_abs_diff"], "mean_abs_diff": closeness["mean_abs_diff"],
                "top1_agreement": closeness["top1_agreement"],
                # real text (held-out sentences) with the task's metric; float rows are the reference
                "real_text_agreement": real.get(get_task(manifest.task).agreement, 1.0 if recipe is None else None),
                "real_text_cosine_mean": real.get("cosine_mean"),
            }
            if data:
                row["accuracy"] = classification_accuracy(pipeline(labelled, target, threads=threads),
                                                          data, eval_data)
            rows.append(row)
            bar.advance(progress_row)
    if data:
        base = {r["format"]: r["accuracy"] for r in rows if r["recipe"] == "float32"}
        for row in rows:
            if "accuracy" in row:
                row["accuracy_delta"] = round(row["accuracy"] - base[row["format"]], 4)
    write_reports(rows, Path(out_dir), threads, seq_len)
    return rows


def _timing_inputs(runner, artifact_dir: Path):
    """Full-length inputs of the artifact's own shape (batch and length as exported)."""
    from pocketbert.models.configs import load_config
    from pocketbert.contracts.artifact import Artifact
    from pocketbert.contracts.spec import full_length_inputs

    spec = Artifact.open(artifact_dir).spec()
    return full_length_inputs(runner.input_names, load_config(artifact_dir).vocab_size, spec.input_shape())


def write_reports(rows: list[dict], out_dir: Path, threads: int, seq_len: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pocketbert.benchmarks.report import markdown_table

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(json.dumps({"threads": threads, "seq_len": seq_len, "rows": rows}, indent=2) + "\n")
    columns = ["format", "recipe", "size_mb", "latency_median_ms", "latency_p90_ms", "max_abs_diff", "top1_agreement",
               "real_text_agreement", "real_text_cosine_mean"]
    columns += [c for c in ("accuracy", "accuracy_delta") if any(c in row for row in rows)]

    lines = [markdown_table(columns, rows)]
    failed = [row for row in rows if "error" in row]
    lines += [""] + [f"- {row['format']} {row['recipe']} failed: {row['error']}" for row in failed] if failed else []
    rows = [row for row in rows if "error" not in row]
    (out_dir / "sweep.md").write_text(f"Quantization sweep, seq {seq_len}, {threads} thread(s)\n\n" + "\n".join(lines) + "\n")
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
