"""Quantization-aware fine-tuning: teach the float weights the integer file's rounding.

Post-training quantization leaves an every-op-int8 file of a real BERT far from its float
model (all-MiniLM-L6-v2: pooled cosine mean 0.79-0.83); the published remedy for MobileBERT-class
models is a short fine-tune with the rounding in the loop (MLPerf Mobile, AIMET). Here the
student is the model run under ``IntegerEmulation`` (the recipe's bits, ranges tracked as
the file's calibration takes them), the teacher the same float model untouched, and the data
unlabelled text: the loss is the distance of the student's outputs from the teacher's, so
no labels are needed and the task stays the model's own. The result
is float weights, which the recipe then quantizes as it would any checkpoint.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from pocketbert.errors import PocketbertError
from pocketbert.contracts.recipe import Method, Recipe

if TYPE_CHECKING:
    import torch

    from pocketbert.quantize.integer_emulation import IntegerScheme


@dataclass(frozen=True)
class FinetuneOptions:
    steps: int = 300
    batch: int = 16
    learning_rate: float = 3e-5
    seed: int = 0
    observe_batches: int = 8  # float forwards that set the first ranges, as calibration does
    observe_every: int = 4  # then a float forward every this many steps follows the weights' ranges

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or not self.learning_rate > 0:
            raise PocketbertError(f"--finetune needs steps >= 1, batch >= 1 and a learning rate > 0, got {self}")


@dataclass(frozen=True)
class FinetuneReport:
    steps: int
    batch: int
    seed: int
    examples: int  # distinct training texts
    seconds: float
    first_loss: float
    last_loss: float  # mean of the last tenth of the steps

    def to_dict(self) -> dict:
        return asdict(self)


def integer_scheme(recipe: Recipe) -> "IntegerScheme":
    """The arithmetic to emulate; only recipes whose every op is integer have one."""
    from pocketbert.quantize.integer_emulation import IntegerScheme

    every_op = recipe.method is Method.STATIC and not recipe.float_softmax and not recipe.float_outliers
    if not every_op or recipe.format != "tflite":
        raise PocketbertError(
            f"--finetune emulates files whose every op is integer (tflite-full-integer-*); {recipe.name} is not one")
    return IntegerScheme(activation_bits=16 if recipe.sixteen_bit_activations else 8)


def finetune(model: "torch.nn.Module", scheme: "IntegerScheme", tokenizer, texts: list[str], seq_len: int,
             options: FinetuneOptions, progress: bool = False) -> tuple["torch.nn.Module", FinetuneReport]:
    """A fine-tuned copy of ``model`` (``model`` itself is the teacher and is not changed)."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from pocketbert.quantize.integer_emulation import IntegerEmulation

    torch.manual_seed(options.seed)
    sampler = random.Random(options.seed)
    teacher = model.eval()
    student = copy.deepcopy(model).eval()  # eval: no dropout, the teacher's function exactly at step 0
    for parameter in student.parameters():
        parameter.requires_grad_(True)
    emulation = IntegerEmulation(scheme)
    optimizer = torch.optim.AdamW(_parameter_groups(student, options.learning_rate), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / options.steps)

    def batch() -> dict:
        rows = [texts[sampler.randrange(len(texts))] for _ in range(options.batch)]
        return dict(tokenizer(rows, padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt"))

    def observe(inputs: dict) -> None:
        # observed through the rounding instead, a saturated op (a variance rounded to 0 feeds
        # RSQRT) would widen its own range until nothing else resolves
        emulation.calibrate(lambda: _forward(student, inputs))

    for _ in range(options.observe_batches):
        observe(batch())
    losses, start = [], time.perf_counter()
    columns = (TextColumn("fine-tuning"), BarColumn(), TextColumn("{task.completed}/{task.total} loss {task.fields[loss]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not progress) as bar:
        task = bar.add_task("steps", total=options.steps, loss="-")
        for step in range(options.steps):
            inputs = batch()
            if step and step % options.observe_every == 0:
                observe(inputs)
            with torch.no_grad():
                target = _forward(teacher, inputs)
            with emulation:
                found = _forward(student, inputs)
                loss = _distance(found, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            bar.update(task, advance=1, loss=f"{losses[-1]:.4f}")
    student.eval().requires_grad_(False)
    tail = losses[-max(1, len(losses) // 10):]
    return student, FinetuneReport(options.steps, options.batch, options.seed, len(set(texts)),
                                   round(time.perf_counter() - start, 1), round(losses[0], 5),
                                   round(sum(tail) / len(tail), 5))


def _parameter_groups(model: "torch.nn.Module", learning_rate: float) -> list[dict]:
    """Adam moves every weight by about the learning rate whatever its size, so a matrix that a
    form scales by 1/64 (MiniLM in MobileBERT's graph carries its norms' inputs x64 and takes
    the scale back out in the next dense layer) would move 64 times further for its size than
    BERT's own: its file went from pooled cosine 0.815 to 0.679, the tuned float model to 0.743
    of the original. Each matrix's rate is scaled by its RMS against the model's median matrix
    RMS (about 1 for a plain BERT); vectors (biases, norms) take the rate as given."""
    from statistics import median

    matrices = [p for p in model.parameters() if p.dim() >= 2]
    sizes = [float(p.detach().pow(2).mean().sqrt()) for p in matrices]
    reference = median(sizes) or 1.0
    groups = [{"params": [p for p in model.parameters() if p.dim() < 2], "lr": learning_rate}]
    groups += [{"params": [p], "lr": learning_rate * size / reference} for p, size in zip(matrices, sizes)]
    return groups


def _forward(model: "torch.nn.Module", inputs: dict) -> dict:
    """The task's outputs, with the norms in the ops the file computes them with."""
    from pocketbert.formats.tflite.layer_norm import integer_layer_norms

    with integer_layer_norms():
        return dict(model(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids")))


def _distance(found: dict, target: dict) -> "torch.Tensor":
    """Sum over the outputs of the squared error relative to the target's own power (each
    output weighs the same whatever its scale). Outputs only, not hidden states: matching
    the residual stream would hold its outlier channels (max ~220 against an RMS of 0.8),
    which are what per-tensor 8-bit ranges cannot resolve."""
    total = 0.0
    for name, want in target.items():
        total = total + ((found[name] - want) ** 2).mean() / (want ** 2).mean().clamp(min=1e-12)
    return total
