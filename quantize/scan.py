"""Sensitivity scan: quantize one block at a time, rank blocks by the error they add.

The blocks are the embeddings, each encoder layer and the head (pooler and classifier or
MLM head). Quantizing only one of them (the others excluded by module-path patterns)
shows which block a recipe hurts; keeping the worst ones in float (``--exclude``) is how a
user rescues a model that collapses under int8.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path

from torch import nn

from pocketbert.errors import PocketbertError
from pocketbert.models.modeling import TaskModel


def model_blocks(model) -> list[tuple[str, list[str]]]:
    """(label, module paths) for the embeddings, every encoder layer and the head."""
    backbone = model.backbone if isinstance(model, TaskModel) else model
    prefix = f"{model.base_model_prefix}." if isinstance(model, TaskModel) else ""
    blocks = [("embeddings", [f"{prefix}embeddings"])]
    for name, module in backbone.named_modules():
        if isinstance(module, nn.ModuleList) and name.count(".") == 1:  # encoder.layer, transformer.layer ...
            blocks += [(f"{name}.{i}", [f"{prefix}{name}.{i}"]) for i in range(len(module))]
    head = [f"{prefix}pooler"] + [name for name, _ in model.named_children() if name != model.base_model_prefix]
    blocks.append(("head", head))
    return blocks


def module_pattern(paths: list[str]) -> str:
    """Regex on module paths (ONNX name scopes, TorchScript module names)."""
    return "^(" + "|".join(re.escape(p) for p in paths) + ")(\\.|$)"


def tflite_pattern(model, paths: list[str]) -> str:
    """Regex on LiteRT tensor names, which litert-torch builds from module scopes as
    "<class qualname>_<attribute>/..." per level; a ModuleList adds no level of its own
    (its children appear as "<class>_<index>")."""
    alternatives = []
    for path in paths:
        module, levels = model, []
        for part in path.split("."):
            if not hasattr(module, part):
                break  # e.g. a pooler this model does not have
            child = getattr(module, part)
            if not isinstance(child, nn.ModuleList):
                levels.append(r"[\w.]+_" + re.escape(part))
            module = child
        else:
            alternatives.append("/".join(levels))
    return "(" + "|".join(alternatives) + ")(/|;)"


def scan(source, recipe_name: str, task: str | None = None, seq_len: int = 128, calibration_file=None) -> list[dict]:
    from pocketbert.export import ExportOptions, export_model
    from pocketbert.export.artifact import is_artifact
    from pocketbert.models import load_model
    from pocketbert.quantize import get_recipe, quantize_model

    recipe = get_recipe(recipe_name)
    if is_artifact(source):
        raise PocketbertError("--scan starts from a checkpoint (it needs the module structure)")
    model = load_model(source, task=task)
    blocks = [
        (label, tflite_pattern(model, paths) if recipe.format == "tflite" else module_pattern(paths))
        for label, paths in model_blocks(model)
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="pocketbert-scan-") as work:
        base = source
        if recipe.format != "torchscript":  # export the float graph once
            base = Path(work) / "float"
            export_model(source, model.task, recipe.format, base, ExportOptions(seq_len=seq_len))
        for index, (label, pattern) in enumerate(blocks):
            others = tuple(p for other, p in blocks if other != label)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a block's pattern may match no quantizable node
                manifest = quantize_model(base, recipe_name, Path(work) / f"q{index}", task=model.task,
                                          calibration_file=calibration_file, exclude=others, seq_len=seq_len)
            output, figures = next(iter(manifest["files"]["model"]["agreement_with_float"].items()))
            rows.append({"block": label, "output": output, **figures})
    rows.sort(key=lambda row: -row["mean_abs_diff"])
    return rows
