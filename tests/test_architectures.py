"""Every registered architecture is a complete unit: a fake config that builds and runs for
every task, a FLOP function the counter dispatches to, a tokenizer class, a paper parameter
range its default config meets, and an entry that agrees with its own modules."""

from __future__ import annotations

import dataclasses
import inspect
import os

import pytest
import torch
from torch import nn
from helpers import inputs_for

from pocketbert.benchmarks.flops import model_flops
from pocketbert.errors import PocketbertError
from pocketbert.models import blocks, registry
from pocketbert.models.summary import encoder_parameters
from pocketbert.models.wordpiece import BertTokenizerFast

pytestmark = pytest.mark.unit

NAMES = list(registry.ARCHITECTURES)


def test_the_registry_collects_one_entry_per_model_module():
    assert [module.ARCHITECTURE for module in registry.MODULES] == list(registry.ARCHITECTURES.values())
    for module in registry.MODULES:
        arch = module.ARCHITECTURE
        assert arch.backbone.__module__ == module.__name__  # the entry sits beside its model
        assert arch.name == arch.config_class.model_type == module.__name__.rsplit(".", 1)[1]


@pytest.mark.parametrize("name", NAMES)
def test_entry_agrees_with_its_classes(name):
    arch = registry.get_architecture(name)
    assert next(iter(arch.tasks)) == "feature-extraction" and arch.tasks["feature-extraction"] is arch.backbone
    assert set(arch.tasks) <= set(registry.TASKS)
    for task, cls in arch.tasks.items():
        assert cls.task == task and cls.config_class is arch.config_class
        assert registry.CLASSES_BY_NAME[cls.__name__] is cls
    assert registry.DEFAULT_TASK in arch.tasks


@pytest.mark.parametrize("arch,task", registry.all_pairs())
def test_fake_config_builds_and_runs(arch, task):
    spec = registry.get_architecture(arch)
    config = spec.fake_config()
    assert config.num_hidden_layers == 2 and config.vocab_size <= 1000  # tiny, not paper-size
    model = spec.model_class(task)(config).init_weights(0).eval()
    with torch.no_grad():
        out = model(**inputs_for(model, batch=2, seq=7))
    assert tuple(out) == model.output_names
    assert all(torch.isfinite(t).all() for t in out.values())


@pytest.mark.parametrize("name", NAMES)
def test_has_a_flop_function_the_counter_uses(name):
    arch = registry.get_architecture(name)
    assert callable(arch.count_encoder_flops)
    config = arch.fake_config()
    assert model_flops(config, 16)["total"] > 0
    for task in arch.tasks:  # every head costs something (a bare DistilBERT has no pooler)
        head = model_flops(config, 16, task=task)["by_part"]["head"]
        pools_only = task == "sentence-embedding"  # element-wise pooling: no matrix products
        runs_pooler = arch.backbone.runs_pooler_dense(config, arch.model_class(task).uses_pooler)
        assert head > 0 or (not runs_pooler and (pools_only or task == "feature-extraction"))
    for source, gflops in arch.paper_gflops.items():
        assert source.endswith("_paper") and gflops > 0


@pytest.mark.parametrize("name", NAMES)
def test_has_a_tokenizer_class(name):
    arch = registry.get_architecture(name)
    assert issubclass(arch.tokenizer_class, BertTokenizerFast)
    takes_token_types = "token_type_ids" in arch.tokenizer_class.model_input_names
    assert takes_token_types == arch.backbone.uses_token_types  # tokenizer feeds what the model takes


@pytest.mark.parametrize("name", NAMES)
def test_default_config_meets_the_papers_parameter_count(name):
    arch = registry.get_architecture(name)
    low, high = arch.paper_params_millions
    assert low <= encoder_parameters(arch) / 1e6 <= high


ACTIVATION_TYPES = tuple({type(make()) for make in blocks._ACTIVATIONS.values()})


@pytest.mark.parametrize("name", NAMES)
def test_declares_exactly_its_feed_forward_outputs(name):
    """The declared FFN outputs (what int8 recipes keep float for a trained model's outlier
    channels) are the projections that read an activation's output, found by running the
    model: an architecture that declares another module, or misses one, fails here."""
    arch = registry.get_architecture(name)
    model = arch.backbone(arch.fake_config()).eval()
    activation_outputs, reads_activation = [], set()

    def remember_output(module, args, output):
        activation_outputs.append(output)

    def check_input(path):
        def hook(module, args):
            if any(args[0] is output for output in activation_outputs):
                reads_activation.add(path)
        return hook

    for path, module in model.named_modules():
        if isinstance(module, ACTIVATION_TYPES):
            module.register_forward_hook(remember_output)
        elif isinstance(module, (nn.Linear, nn.Conv1d)):
            module.register_forward_pre_hook(check_input(path))
    with torch.no_grad():
        model(**inputs_for(model, batch=2, seq=7))
    declared = arch.ffn_output_modules(model)
    assert declared and set(declared) == reads_activation
    assert len(declared) % model.config.num_hidden_layers == 0  # the same in every layer


def test_a_declaration_that_matches_nothing_is_an_error():
    arch = dataclasses.replace(registry.get_architecture("bert"), ffn_outputs=("encoder.layer.*.ffn.lin2",))
    model = arch.model_class("text-classification")(arch.fake_config())
    with pytest.raises(PocketbertError, match=r"bert: the declared FFN outputs \('encoder\.layer\.\*\.ffn\.lin2'\) match no"):
        arch.ffn_output_modules(model)


def test_mobilebert_with_one_ffn_per_layer_has_its_ffn_outputs():
    """num_feedforward_networks=1 (the BERT form of models/convert.py) has no ``ffn.*`` stack:
    its one FFN output per layer is still found (the int8 recipes keep it float)."""
    arch = registry.get_architecture("mobilebert")
    model = arch.model_class("feature-extraction")(arch.fake_config(num_feedforward_networks=1))
    assert arch.ffn_output_modules(model) == ["encoder.layer.0.output.dense", "encoder.layer.1.output.dense"]


def files_from_forward_to_attention_scores(model, monkeypatch) -> list[str]:
    """The model files the call stack passes through, outermost first, from the forward to
    the first attention score (``blocks.attend``), a run of frames in one file counted once."""
    models_dir = os.path.dirname(os.path.realpath(blocks.__file__))
    stacks, attend = [], blocks.attend

    def spy(*args, **kwargs):
        stacks.append([os.path.realpath(frame.filename) for frame in inspect.stack()[1:]])
        return attend(*args, **kwargs)

    monkeypatch.setattr(blocks, "attend", spy)
    with torch.no_grad():
        model(**inputs_for(model, batch=1, seq=5))
    callers = [os.path.basename(f) for f in reversed(stacks[0]) if os.path.dirname(f) == models_dir]
    files = callers + ["blocks.py"]  # where the score itself is computed
    return [f for index, f in enumerate(files) if index == 0 or files[index - 1] != f]


@pytest.mark.parametrize("name", NAMES)
def test_a_forward_reads_top_to_bottom_in_its_own_file(name, monkeypatch):
    """From the backbone's forward to an attention score: the model's file, then the shared
    blocks, and never back (a reader follows one layer without bouncing between files)."""
    arch = registry.get_architecture(name)
    backbone = arch.backbone(arch.fake_config()).eval()
    assert files_from_forward_to_attention_scores(backbone, monkeypatch) == [f"{name}.py", "blocks.py"]
    classifier = arch.model_class("text-classification")(arch.fake_config()).eval()
    files = files_from_forward_to_attention_scores(classifier, monkeypatch)
    assert files[-2:] == [f"{name}.py", "blocks.py"] and len(files) == len(set(files)) <= 3, files
