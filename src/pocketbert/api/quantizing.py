"""Quantization experiments: one recipe, a quality target, a per-block scan, a sweep."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pocketbert.api.checks import checked, positive, refuse_overlap, regex, threads as thread_count
from pocketbert.api.exporting import Written, untrained_warnings
from pocketbert.api.result import Result
from pocketbert.contracts.spec import DEFAULT_SEQUENCE_LENGTH
from pocketbert.errors import PocketbertError

# a file of sentences (.txt a line each, .jsonl/.tsv with a text column), or the sentences
TextSource = str | Path | Sequence[str] | None


def eval_sentences(source: TextSource) -> list[str] | None:
    """The sentences quality is measured on; None: the library's held-out ones."""
    from pocketbert.quantize.calibration import read_texts

    if source is None:
        return None
    if isinstance(source, (str, Path)):
        return [text for text, _ in read_texts(source, what="eval")]
    texts = [str(text) for text in source]
    if not texts:
        raise PocketbertError("eval_text: no sentences to measure quality on")
    return texts


def _text_files(source: TextSource) -> list[str]:
    return [str(source)] if isinstance(source, (str, Path)) else []


@dataclass(frozen=True)
class Quantized(Written):
    def lines(self) -> list[str]:
        from pocketbert.quality import metrics as quality

        m = self.manifest
        out = [f"wrote {self.directory}: {m.model_class} with {m.quantization['name']}"]
        tuning = m.quantization.get("finetune")
        if tuning:
            out.append(f"  fine-tuned {tuning['steps']} steps in {tuning['seconds']:.0f} s (loss {tuning['first_loss']:.4f} -> "
                       f"{tuning['last_loss']:.4f}); without it: {quality.summary(tuning['before'])}")
            out.append(f"  the tuned float model against the original: {quality.summary(tuning['float_drift'])}")
        for entry in m.files.values():
            out.append(f"  {entry.path:<12} {entry.bytes / 1e6:7.1f} MB (float {entry.float_bytes / 1e6:.1f})")
            out.append(f"    {m.task} quality vs float: "
                       + (quality.summary(entry.quality) if entry.quality else "not measured (the artifact has no tokenizer)"))
            for output, figures in entry.agreement_with_float.items():
                top1 = figures["top1_agreement"]
                out.append(f"    random ids (numerical check) {output}: max abs diff {figures['max_abs_diff']:.3g}, "
                           f"mean abs diff {figures['mean_abs_diff']:.3g}"
                           + (f", top-1 agreement {top1:.3f}" if top1 is not None else ""))
        return out + list(self.checks)


def below_floor_warnings(manifest) -> tuple[str, ...]:
    """A file kept under the floors on request, loudly: it does not compute the model."""
    return tuple(f"WARNING: {name} kept under the quality floors: {'; '.join(lines)}"
                 for name, lines in ((manifest.quantization or {}).get("below_floor") or {}).items())


def quantize(source: str | Path, recipe: str, out_dir: str | Path, *, task: str | None = None,
             calibration: str | Path | None = None, exclude: Sequence[str] = (), seq_len: int = DEFAULT_SEQUENCE_LENGTH,
             finetune: int | None = None, seed: int = 0, eval_text: TextSource = None, force: bool = False,
             require_trained_head: bool = False, keep_below_floor: bool = False, export_options=None,
             progress: bool = False) -> Quantized:
    """Quantize ``source`` (a checkpoint, exported to the recipe's format first, or a float
    export of that format) with ``recipe``; the manifest records the recipe, the calibration and
    the quality against float on real text. A file under the quality floors is refused unless
    ``keep_below_floor``. ``finetune``: steps of fine-tuning with the integer rounding emulated
    first. ``export_options``: every export option (``export(quantize=...)`` passes them)."""
    from pocketbert.contracts.format import ExportOptions
    from pocketbert.quantize import FinetuneOptions, get_recipe, quantize_model

    refuse_overlap([str(source), *_text_files(calibration), *_text_files(eval_text)], [str(out_dir)])
    if calibration and not get_recipe(recipe).needs_calibration:
        raise PocketbertError(f"--calibration: recipe {recipe} is not calibrated (dynamic or weight-only); "
                              "use a static recipe or leave --calibration out")
    exclude = tuple(checked("exclude", pattern, regex) for pattern in exclude)
    options = export_options or ExportOptions(seq_len=positive("seq_len", seq_len), require_trained_head=require_trained_head)
    steps = positive("finetune", finetune)
    manifest = quantize_model(
        source, recipe, out_dir, task=task, calibration_file=calibration, exclude=exclude, force=force, options=options,
        eval_texts=eval_sentences(eval_text), keep_below_floor=keep_below_floor,
        finetune=None if steps is None else FinetuneOptions(steps=steps, seed=seed), progress=progress,
    )
    warnings = untrained_warnings(manifest.task, manifest.untrained_weights, manifest.deprecated)
    return Quantized(Path(out_dir), manifest, warnings=warnings + below_floor_warnings(manifest))


@dataclass(frozen=True)
class TargetSearch(Written):
    """The chosen file, with every candidate the search measured (``records``: a row each)."""

    def search(self) -> dict:
        return self.manifest.quantization["target_search"]

    def lines(self) -> list[str]:
        search = self.search()
        metric = search["target"]["metric"]
        out = [f"{'candidate':<48} {metric:>16} {'ms':>9} {'MB':>7}   (tuning half, {search['threads']} thread(s))"]
        for row in search["candidates"]:
            value = "-" if row[metric] is None else f"{row[metric]:.4f}"
            out.append(f"{row['candidate']:<48} {value:>16} {row.get('median_ms', float('nan')):>9.2f} {row['bytes'] / 1e6:>7.1f}")
        chosen = next(row for row in search["candidates"] if row["candidate"] == search["chosen"])
        out.append(f"wrote {self.directory}: {search['chosen']}, {metric} {chosen['held_out'][metric]:.4f} on "
                   f"{search['held_out_sentences']} held-out sentences (target {search['target']['floor']:g})")
        return out

    def records(self) -> list[dict]:
        chosen = self.search()["chosen"]
        return [{**row, "chosen": row["candidate"] == chosen} for row in self.search()["candidates"]]


def quantize_to_target(source: str | Path, format: str, target: str, out_dir: str | Path, *, task: str | None = None,
                       calibration: str | Path | None = None, seq_len: int = DEFAULT_SEQUENCE_LENGTH, threads: int = 1,
                       eval_text: TextSource = None, force: bool = False, keep_below_floor: bool = False,
                       workers: int | None = None, ray: str | None = None,
                       progress: Callable[[str], None] = lambda line: None) -> TargetSearch:
    """The fastest file of ``format`` that keeps ``target`` (``"cosine_mean>=0.995"``,
    ``"agreement>=0.98"``) on held-out real text: the format's recipes, then blocks kept in
    float. ``workers``/``ray``: where the candidates' quality jobs run (timing keeps a machine
    to itself)."""
    from pocketbert.quantize.target import quantize_to_target as search

    refuse_overlap([str(source), *_text_files(calibration), *_text_files(eval_text)], [str(out_dir)])
    with pool(workers, ray) as jobs:
        manifest = search(source, format, target, out_dir, task=task, calibration_file=calibration,
                          seq_len=positive("seq_len", seq_len), threads=checked("threads", threads, thread_count),
                          force=force, progress=progress, eval_texts=eval_sentences(eval_text),
                          keep_below_floor=keep_below_floor, pool=jobs)
    return TargetSearch(Path(out_dir), manifest, warnings=below_floor_warnings(manifest))


def pool(workers: int | None = None, ray: str | None = None):
    """Where an experiment's jobs run: this process, a private local Ray of ``workers``, or
    the Ray cluster at ``ray`` (``"auto"`` or an address); a context manager."""
    from pocketbert.executor import executor

    return executor(workers=positive("workers", workers), ray_address=ray)


@dataclass(frozen=True)
class BlockScan(Result):
    recipe: str
    rows: tuple[dict, ...]

    def lines(self) -> list[str]:
        out = [f"{'block':<24} {'real text':>10} {'mean abs diff':>14} {'max abs diff':>13} {'top-1':>7}   "
               f"(worst first, {self.recipe}; real text: the task's figure on held-out sentences)"]
        for row in self.rows:
            top1 = "-" if row["top1_agreement"] is None else f"{row['top1_agreement']:.3f}"
            real = "-" if row["real_text"] is None else f"{row['real_text']:.4f}"
            out.append(f"{row['block']:<24} {real:>10} {row['mean_abs_diff']:>14.4g} {row['max_abs_diff']:>13.4g} {top1:>7}")
        return out

    def records(self) -> list[dict]:
        return [dict(row) for row in self.rows]

    def as_dict(self) -> dict:
        """``quantize --scan -o FILE``'s JSON."""
        return {"recipe": self.recipe, "blocks": self.records()}


def scan(source: str | Path, recipe: str, *, task: str | None = None, seq_len: int = DEFAULT_SEQUENCE_LENGTH,
         calibration: str | Path | None = None, eval_text: TextSource = None) -> BlockScan:
    """Quantize one block at a time and rank the blocks by the error each adds, worst first:
    which layers to keep in float (``quantize(exclude=...)``)."""
    from pocketbert.quantize import get_recipe
    from pocketbert.quantize.scan import scan as scan_blocks

    if calibration and not get_recipe(recipe).needs_calibration:
        raise PocketbertError(f"--calibration: recipe {recipe} is not calibrated (dynamic or weight-only); "
                              "use a static recipe or leave --calibration out")
    rows = scan_blocks(source, recipe, task=task, seq_len=positive("seq_len", seq_len), calibration_file=calibration,
                       eval_texts=eval_sentences(eval_text))
    return BlockScan(recipe, tuple(rows))


@dataclass(frozen=True)
class Sweep(Result):
    directory: Path
    rows: tuple[dict, ...]

    def lines(self) -> list[str]:
        return (self.directory / "sweep.md").read_text(encoding="utf-8").rstrip("\n").split("\n")

    def records(self) -> list[dict]:
        return [dict(row) for row in self.rows]

    def files(self) -> list[Path]:
        return [self.directory / name for name in ("sweep.json", "sweep.md", "sweep.png")]


def sweep(models: str | Path | Sequence[str | Path], out_dir: str | Path, *, formats: Sequence[str] | None = None,
          recipes: Sequence[str] | None = None, eval_data: str | Path | None = None, task: str | None = None,
          threads: int = 1, seq_len: int = DEFAULT_SEQUENCE_LENGTH, runs: int = 20,
          calibration: Sequence[str | Path] | None = None, eval_text: TextSource = None, workers: int | None = None,
          ray: str | None = None, progress: bool = False) -> Sweep:
    """Every recipe of ``formats`` (default: all) against float for each checkpoint: size,
    latency, quality on real text, accuracy with ``eval_data``, the Pareto front; written to
    ``out_dir`` as sweep.json, sweep.md and sweep.png. An interrupted sweep keeps its finished
    jobs in ``out_dir/.jobs``: the same call again resumes."""
    from pocketbert.formats import FORMATS
    from pocketbert.quantize.recipes import RECIPES
    from pocketbert.quantize.sweep import sweep as run_sweep

    models = [models] if isinstance(models, (str, Path)) else list(models)
    calibration = [calibration] if isinstance(calibration, (str, Path)) else calibration
    inputs = [*map(str, models), *map(str, calibration or []), *_text_files(eval_text), *_text_files(eval_data)]
    refuse_overlap(inputs, [str(out_dir)])
    with pool(workers, ray) as jobs:
        rows = run_sweep(models, list(formats or FORMATS), list(recipes or RECIPES), out_dir, eval_data=eval_data,
                         threads=checked("threads", threads, thread_count), seq_len=positive("seq_len", seq_len),
                         runs=positive("runs", runs), progress=progress, task=task, eval_texts=eval_sentences(eval_text),
                         pool=jobs, calibration_files=calibration)
    return Sweep(Path(out_dir), tuple(rows))
