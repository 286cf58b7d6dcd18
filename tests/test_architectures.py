"""Every registered architecture is a complete unit: a fake config that builds and runs for
every task, a FLOP function the counter dispatches to, a tokenizer class, a paper parameter
range its default config meets, and an entry that agrees with its own modules."""

from __future__ import annotations

import pytest
import torch
from helpers import inputs_for

from pocketbert.benchmarks.flops import model_flops
from pocketbert.models import registry
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
