"""Quality-targeted quantization: the fastest file of a format that keeps a quality target.

``pocketbert quantize SOURCE --format F --target "cosine_mean>=0.995" -o OUT``:

1. every int8 recipe of the format is applied and measured on real text (the tuning half
   of the held-out sentences, or ``--eval-text``): the target's figure, and latency (batch 1,
   full-length inputs, the given threads, the same process for every candidate, alternated);
2. if none meets the target, the fastest recipe is repeated with blocks (embeddings, each
   encoder layer, the head) kept in float, the most damaging first as the sensitivity scan
   (``scan_blocks``) ranks them on the same text (for embeddings by pooled cosine), until
   the target holds or ``max_float_blocks`` are float;
3. the fastest candidate meeting the target is checked on the other half of the sentences
   (text the search never saw); the first that still holds is written, with the whole
   search (candidates, figures, latency) in its manifest.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

from pocketbert.atomic import atomic_directory, refuse_existing, work_directory
from pocketbert.contracts.artifact import Artifact, Manifest, is_artifact, write_manifest
from pocketbert.quality import gate, metrics as quality
from pocketbert.errors import PocketbertError
from pocketbert.models.tasks import get_task


def parse_target(text: str, task: str) -> tuple[str, float]:
    """("cosine_mean", 0.995) from "cosine_mean>=0.995"; "agreement" names the task's
    agreement figure (label, token, masked top-1, span or nearest-neighbour)."""
    match = re.fullmatch(r"\s*([a-z_0-9]+)\s*>=\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*", text or "")
    if not match:
        raise PocketbertError(f"--target {text!r}: write it as METRIC>=VALUE, e.g. cosine_mean>=0.995 or agreement>=0.98")
    metric, value = match.group(1), float(match.group(2))
    entry = get_task(task)
    metric = entry.agreement if metric == "agreement" else metric
    known = (*entry.figures, quality.EVERY_TASK_FIGURE)  # output_closeness: every task reports it
    if metric not in known:
        raise PocketbertError(f"--target: {task} has no figure {metric!r} (it has: {', '.join(known)}, agreement)")
    if not 0 <= value <= 1:
        raise PocketbertError(f"--target: {metric} is a fraction between 0 and 1, got {value:g}")
    return metric, value


def quantize_to_target(source, fmt_name: str, target: str, out_dir, task: str | None = None,
                       calibration_file=None, seq_len: int | None = None, threads: int = 1,
                       eval_texts: list[str] | None = None, max_float_blocks: int = 4, force: bool = False,
                       progress=lambda line: None, recipe_names: list[str] | None = None,
                       keep_below_floor: bool = False, pool=None) -> Manifest:
    """``recipe_names`` limits the search to these recipes of the format (default: all int8).
    Returns the chosen file's manifest, the search recorded in its ``quantization``. The file
    written also keeps the documented floors on the held-out half (``quality/gate``) unless
    ``keep_below_floor``: a target under them does not buy a collapsed file. ``pool``: where the
    candidates are made and measured (``pocketbert.executor``; default in this process); they
    are timed together on one machine that has its cores to itself."""
    from pocketbert.export import ExportOptions, export_model
    from pocketbert.formats import get_format
    from pocketbert.models import load_model
    from pocketbert.models.hub import resolve
    from pocketbert.executor import InProcess, Tree, make_job
    from pocketbert.quantize.scan import scan_blocks
    from pocketbert.quantize.timing import time_on_one_machine

    fmt = get_format(fmt_name)
    fmt.require()
    if is_artifact(source):
        raise PocketbertError("--target starts from a checkpoint (it keeps blocks of the model in float)")
    model = load_model(source, task=task)
    metric, floor = parse_target(target, model.task)
    refuse_existing(out_dir, force, protect=[source])
    texts = eval_texts if eval_texts is not None else quality.default_texts()
    if len(texts) < 8:
        raise PocketbertError(f"--target needs at least 8 sentences to tune and check on, got {len(texts)}")
    tune, check = texts[::2], texts[1::2]
    recipes = [r for r in fmt.recipes if r.method.integer and r.params.float_outputs
               and (recipe_names is None or r.name in recipe_names)]
    if not recipes:
        raise PocketbertError(f"{fmt.name} has no int8 recipe to search")
    options = ExportOptions(seq_len=seq_len) if seq_len else ExportOptions()
    pool = pool or InProcess()
    with work_directory("target") as work:
        work = Path(work)
        base = source
        if fmt.quantizes == "file":
            base = work / "float"
            export_model(source, model.task, fmt.name, base, options)

        base_tree = Tree.of(resolve(base) if base is source else base)  # a hub name: its local copy
        calibration = None if calibration_file is None else Tree.of_file(calibration_file)
        candidates: list[dict] = []
        files: dict[str, Tree] = {}  # each candidate's directory, for timing

        def attempts(planned: list[tuple]) -> list[dict]:
            """Each (recipe, [(label, pattern) blocks kept in float]) quantized and measured, as jobs."""
            jobs = [make_job(" + ".join([recipe.name, *[label for label, _ in blocks]]), f"{__name__}:candidate_job",
                             base=base_tree, recipe=recipe.name, task=model.task, calibration=calibration,
                             exclude=[pattern for _, pattern in blocks], seq_len=seq_len, texts=tune)
                     for recipe, blocks in planned]
            rows = []
            for (recipe, blocks), outcome in zip(planned, pool.run(jobs)):
                if not outcome.ok:
                    raise PocketbertError(f"{outcome.label}: {outcome.error}")
                found = outcome.value["quality"]
                directory = outcome.artifact.unpack(work / f"c{len(candidates)}")
                files[outcome.label] = outcome.artifact
                row = {"candidate": outcome.label, "recipe": recipe.name, "float_blocks": [label for label, _ in blocks],
                       "directory": str(directory), "bytes": outcome.value["bytes"], "sha256": outcome.value["sha256"],
                       metric: found.get(metric), "quality": found}
                candidates.append(row)
                rows.append(row)
                progress(f"{outcome.label}: {metric} {_fmt(row[metric])}")
            return rows

        def time_all(rows: list[dict]) -> None:
            """Median latency of each, rounds alternated so drift hits all alike, on one machine."""
            timing = time_on_one_machine(pool, [files[row["candidate"]] for row in rows], threads, runs=30)
            for row, timed in zip(rows, timing.value["rows"]):
                row["median_ms"] = timed["median_ms"]

        time_all(attempts([(recipe, []) for recipe in recipes]))
        if not any(_meets(c, metric, floor) for c in candidates):
            fastest = min(candidates, key=lambda c: c["median_ms"])
            recipe = next(r for r in recipes if r.name == fastest["recipe"])
            ranked = [(row["block"], row["pattern"])
                      for row in scan_blocks(base, recipe.name, model, options, calibration_file, tune)]
            kept: list[tuple[str, str]] = []
            for label, pattern in ranked[:max_float_blocks]:
                kept.append((label, pattern))
                row, = attempts([(recipe, list(kept))])
                time_all([row])
                if _meets(row, metric, floor):
                    break
        chosen = None
        for row in sorted((c for c in candidates if _meets(c, metric, floor)), key=lambda c: c["median_ms"]):
            row["held_out"] = _held_out(base, Path(row["directory"]), model.task, check)
            row["below_floor"] = gate.failures(row["held_out"], model.config.random_weights)
            if _meets({metric: row["held_out"].get(metric)}, metric, floor) and (keep_below_floor or not row["below_floor"]):
                chosen = row
                break
        refused = [c for c in candidates if c.get("below_floor")]
        if chosen is None and refused:
            raise gate.refusal({refused[0]["candidate"]: refused[0]["below_floor"]})
        if chosen is None:
            best = max(candidates, key=lambda c: c[metric] if c[metric] is not None else -1)
            raise PocketbertError(f"no {fmt.name} file meets {metric}>={floor:g}: the best was {best['candidate']} "
                                  f"at {_fmt(best[metric])}; keep more in float (--exclude) or use another format")
        search = {"target": {"metric": metric, "floor": floor}, "tuning_sentences": len(tune),
                  "held_out_sentences": len(check), "threads": threads, "chosen": chosen["candidate"],
                  "candidates": [{k: v for k, v in c.items() if k != "directory"} for c in candidates]}
        with atomic_directory(out_dir, force=force, protect=[source]) as tmp:
            for item in Path(chosen["directory"]).iterdir():
                shutil.copyfile(item, tmp / item.name)
            chosen_manifest = Artifact.open(tmp).manifest
            manifest = write_manifest(tmp, dataclasses.replace(
                chosen_manifest, quantization={**chosen_manifest.quantization, "target_search": search}))
    return manifest


def _meets(row: dict, metric: str, floor: float) -> bool:
    value = row.get(metric)
    return value is not None and value >= floor


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def candidate_job(scratch: Path, base, recipe: str, task: str, calibration, exclude: list[str], seq_len: int | None,
                  texts: list[str]) -> tuple[dict, Path]:
    """One candidate of the search: ``recipe`` applied to ``base`` (the checkpoint, or the
    format's float file) with ``exclude`` kept in float, measured on the tuning ``texts``."""
    from pocketbert.export import ExportOptions
    from pocketbert.quantize import quantize_model

    source = base.unpack(scratch / "base")
    calibration_file = None
    if calibration is not None:
        calibration_file = calibration.unpack_file(scratch / "calibration")
    directory = scratch / "candidate"
    manifest = quantize_model(source, recipe, directory, task=task, calibration_file=calibration_file,
                              exclude=tuple(exclude), options=ExportOptions(seq_len=seq_len) if seq_len else ExportOptions(),
                              eval_texts=texts, keep_below_floor=True)  # every candidate is measured and listed
    entry = manifest.files["model"]
    return {"bytes": entry.bytes, "sha256": entry.sha256, "quality": entry.quality or {}}, directory


def _held_out(float_dir: Path | str, candidate_dir: Path, task: str, texts: list[str]) -> dict:
    """The candidate's quality on sentences the search never saw."""
    from pocketbert.formats import open_runner
    from pocketbert.models.tokenizer import load_tokenizer

    reference = open_runner(float_dir, task=task)
    candidate = open_runner(candidate_dir)
    spec = Artifact.open(candidate_dir).spec()
    return quality.measure(task, reference, candidate, load_tokenizer(candidate_dir), spec, texts)
