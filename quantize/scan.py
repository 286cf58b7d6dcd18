"""Sensitivity scan: quantize one block at a time, rank blocks by the error they add.

The blocks are the embeddings, each encoder layer and the head (pooler and classifier or
MLM head). Quantizing only one of them (the others excluded by module-path patterns)
shows which block a recipe hurts; keeping the worst ones in float (``--exclude``) is how a
user rescues a model that collapses under int8.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from torch import nn

from pocketbert.atomic import work_directory
from pocketbert.errors import PocketbertError
from pocketbert.models.modeling import TaskModel
from pocketbert.contracts.spec import DEFAULT_SEQUENCE_LENGTH


def model_blocks(model) -> list[tuple[str, list[str]]]:
    """(label, module paths) for the embeddings, every encoder layer and the head (pooler
    and what the task model adds); a bare backbone's head is its pooler alone."""
    task_model = isinstance(model, TaskModel)
    backbone = model.backbone if task_model else model
    prefix = f"{model.base_model_prefix}." if task_model else ""
    blocks = [("embeddings", [f"{prefix}embeddings"])]
    for name, module in backbone.named_modules():
        if isinstance(module, nn.ModuleList) and name.count(".") == 1:  # encoder.layer, transformer.layer ...
            blocks += [(f"{name}.{i}", [f"{prefix}{name}.{i}"]) for i in range(len(module))]
    head = [f"{prefix}pooler"] if getattr(backbone, "pooler", None) is not None else []
    if task_model:
        head += [name for name, _ in model.named_children() if name != model.base_model_prefix]
    if head:
        blocks.append(("head", head))
    return blocks


def scan(source, recipe_name: str, task: str | None = None, seq_len: int = DEFAULT_SEQUENCE_LENGTH,
         calibration_file=None, eval_texts: list[str] | None = None) -> list[dict]:
    from pocketbert.export import ExportOptions, export_loaded
    from pocketbert.formats import get_format
    from pocketbert.models import load_model
    from pocketbert.quantize import get_recipe
    from pocketbert.contracts.artifact import is_artifact

    recipe = get_recipe(recipe_name)
    fmt = get_format(recipe.format)
    if is_artifact(source):
        raise PocketbertError("--scan starts from a checkpoint (it needs the module structure)")
    model = load_model(source, task=task)
    options = ExportOptions(seq_len=seq_len)
    with work_directory("scan") as work:
        base = source
        if fmt.quantizes == "file":  # export the float graph once
            base = Path(work) / "float"
            export_loaded(model, recipe.format, base, options, source=str(source))
        return scan_blocks(base, recipe_name, model, options, calibration_file, eval_texts)


def scan_blocks(base, recipe_name: str, model, options, calibration_file=None, eval_texts=None) -> list[dict]:
    """One row per block of ``model``, worst first, quantizing ``base`` (the float export,
    or the checkpoint for formats that quantize the model) with only that block in int8."""
    from pocketbert.formats import get_format
    from pocketbert.quantize import get_recipe, quantize_model

    fmt = get_format(get_recipe(recipe_name).format)
    blocks = [(label, fmt.block_pattern(model, paths)) for label, paths in model_blocks(model)]
    rows = []
    reference_outputs: dict = {}  # every block starts from the same float model: run it once
    with work_directory("scan") as work:
        for index, (label, pattern) in enumerate(blocks):
            others = tuple(p for other, p in blocks if other != label)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a block's pattern may match no quantizable node
                manifest = quantize_model(base, recipe_name, Path(work) / f"q{index}", task=model.task,
                                          calibration_file=calibration_file, exclude=others, options=options,
                                          eval_texts=eval_texts, keep_below_floor=True,  # ranks every block
                                          reference_outputs=reference_outputs)
            entry = manifest.files["model"]
            output, figures = next(iter(entry.agreement_with_float.items()))
            real = entry.quality or {}
            rows.append({"block": label, "pattern": pattern, "output": output, **figures,
                         "real_text": real.get(_ranking_figure(model.task)), "quality": real})
    # worst first: by the task's figure on real text, else by the error on random ids
    rows.sort(key=lambda row: (row["real_text"] if row["real_text"] is not None else 1.0, -row["mean_abs_diff"]))
    return rows


def _ranking_figure(task: str) -> str:
    """Pooled cosine for embeddings (finer than neighbour retention), else the task's agreement."""
    from pocketbert.models.tasks import get_task

    entry = get_task(task)
    return "cosine_mean" if entry.figures_kind == "embedding" else entry.agreement
