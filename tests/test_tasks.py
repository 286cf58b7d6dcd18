"""The task registry (models/tasks.py) is complete and the only place a task is spelled.

Every entry must say everything the other layers ask of a task, each layer must have a
function for every kind an entry names, and what an entry declares must be what the model
and the quality measure actually give. A task name written as a string anywhere outside
models/ (docstrings and comments aside) fails: it would be a table the registry does not feed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import fake_model
from pocketbert.benchmarks.flops import model_flops
from pocketbert.api import running as run
from pocketbert.contracts.runner import TorchRunner
from pocketbert.contracts.spec import ExportSpec, random_inputs
from pocketbert.models import registry, tasks
from pocketbert.models.vocab import build_vocab, heldout_lines
from pocketbert.pipelines import PIPELINES
from pocketbert.quality import metrics as quality
from test_layers import ROOT, part_files

pytestmark = pytest.mark.unit

TASKS = [task.name for task in tasks.TASKS]


def test_registry_lists_exactly_the_tasks_the_architectures_have():
    assert registry.TASKS == tuple(TASKS)
    assert len(set(TASKS)) == len(TASKS)
    used = {task for arch in registry.ARCHITECTURES.values() for task in arch.tasks}
    assert used == set(TASKS), f"entries without a head class: {set(TASKS) - used}; heads without an entry: {used - set(TASKS)}"
    assert registry.DEFAULT_TASK in TASKS


@pytest.mark.parametrize("name", TASKS)
def test_entry_is_complete(name):
    task = tasks.get_task(name)
    assert task.texts in tasks.TEXT_KINDS
    assert task.figures_kind in tasks.FIGURES_KINDS and task.figures_kind in quality.FIGURES, "no quality function"
    assert task.figures and task.agreement in task.figures
    assert task.agreement in task.floors, f"{name}: its agreement figure {task.agreement} has no floor"
    assert task.input_kind in tasks.INPUT_KINDS and task.input_kind in run.PARSERS, "run cannot parse its input"
    if task.has_pipeline:
        assert task.answer_kind in tasks.ANSWER_KINDS and task.answer_kind in run.PRINTERS, "run cannot print it"
        assert name in PIPELINES and PIPELINES[name].serves is task, f"{name} has no pipeline registered"
    else:
        assert name not in PIPELINES, f"{name} has a pipeline but its entry names no answer kind"
    assert all(layer.rows in ("tokens", "sequences") for arch in registry.ARCHITECTURES.values() if name in arch.tasks
               for layer in task.head_linears(arch.fake_config(), arch.model_class(name)))


def test_every_kind_has_its_function_in_each_layer():
    assert set(quality.FIGURES) == set(tasks.FIGURES_KINDS)
    assert set(run.PARSERS) == set(tasks.INPUT_KINDS)
    assert set(run.PRINTERS) == set(tasks.ANSWER_KINDS)


@pytest.mark.parametrize("name", TASKS)
def test_entry_is_what_the_model_computes(name):
    """The declared axes are the outputs' shapes, the head FLOPs are counted, and quality
    reports exactly the declared figures (a file against itself: every agreement is 1)."""
    task = tasks.get_task(name)
    arch = next(arch for arch in registry.ARCHITECTURES.values() if name in arch.tasks)
    model = fake_model(arch.name, name)
    spec = ExportSpec.for_model(model, choices=3)
    assert spec.input_axes == task.input_axes
    sizes = {"batch": 2, "sequence": 9, "choices": 3}
    outputs = TorchRunner(model)(random_inputs(spec, model.config.vocab_size, sizes, seed=0))
    for output, axes in spec.output_axes.items():
        assert outputs[output].shape == tuple(sizes.get(a, a) for a in axes), output
    flops = model_flops(model.config, 16, task=name)["by_part"]["head"]
    pooler = arch.backbone.runs_pooler_dense(model.config, type(model).uses_pooler)
    assert (flops > 0) == bool(task.head_linears(model.config, type(model)) or pooler)

    vocab = {token: i for i, token in enumerate(build_vocab(model.config.vocab_size))}
    tokenizer = arch.tokenizer_class(vocab, model_max_length=model.config.max_position_embeddings)
    runner = TorchRunner(model)
    found = quality.measure(name, runner, runner, tokenizer, ExportSpec.for_model(model, sequence=16), heldout_lines()[:12])  # recall@10 needs 11
    assert set(found) == {"task", "sentences", *task.figures, quality.EVERY_TASK_FIGURE}, found
    assert found[task.agreement] == 1.0
    assert quality.floor_failures(found, task.floors) == []
    broken = {key: (1 - value if key == task.agreement else value) for key, value in found.items()}
    assert quality.floor_failures(broken, task.floors), "a floor that cannot fail"


def _task_name_literals(path: Path, root: Path = ROOT) -> list[str]:
    """Where ``path`` spells a task name as a string constant (docstrings aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [f"{path.relative_to(root)}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in TASKS and id(node) not in docstrings]


def test_no_task_name_is_spelled_outside_models():
    files = [f for part, paths in part_files().items() if part != "models" for f in paths]
    files += sorted((ROOT / "scripts").glob("*.py"))
    assert len(files) > 50 and any(f.name == "run.py" for f in files), "the scan sees no code"
    found = [hit for path in files for hit in _task_name_literals(path)]
    assert found == [], "task names outside models/ (use the entries of models/tasks.py):\n" + "\n".join(found)


def test_the_scan_finds_a_spelled_task_name(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""fill-mask in a docstring is fine."""\nTABLE = {"fill-mask": 1}  # so is fill-mask here\n',
                      encoding="utf-8")
    assert _task_name_literals(sample, tmp_path) == ["sample.py:2: 'fill-mask'"]
