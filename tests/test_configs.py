"""Configs read and write transformers' config.json without losing a field."""

from __future__ import annotations

import json

import pytest
from helpers import hf, hf_config, quiet

from pocketbert.errors import ConfigError
from pocketbert.models import registry
from pocketbert.models.configs import config_from_dict, load_config

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("arch", list(registry.ARCHITECTURES))
def test_transformers_config_round_trips_exactly(arch, tmp_path):
    """Every key transformers writes (dropouts, versions, labels...) comes back unchanged."""
    config = registry.get_architecture(arch).fake_config().with_labels(3)
    theirs = hf_config(config)
    with quiet():
        theirs.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    ours = load_config(tmp_path)
    assert ours.to_dict() == written
    ours.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == written


@pytest.mark.parametrize("arch", list(registry.ARCHITECTURES))
def test_defaults_are_transformers_defaults(arch):
    """Our default config is the paper-size model transformers' defaults describe."""
    ours = registry.get_architecture(arch).default_config().to_dict()
    theirs = hf().AutoConfig.for_model(arch).to_dict()
    for key, value in ours.items():
        if key in theirs and key not in ("architectures",):
            assert theirs[key] == value, key


def test_aliases_and_derived_fields():
    distil = registry.get_architecture("distilbert").default_config()
    assert (distil.hidden_size, distil.num_hidden_layers, distil.num_attention_heads) == (768, 6, 12)
    assert distil.replace(num_hidden_layers=2).n_layers == 2
    mobile = registry.get_architecture("mobilebert").default_config()
    assert mobile.true_hidden_size == 128
    assert mobile.replace(use_bottleneck=False, key_query_shared_bottleneck=False).true_hidden_size == 512
    assert "true_hidden_size" in mobile.to_dict()


def test_old_style_num_labels_is_understood():
    config = config_from_dict({"model_type": "bert", "num_labels": 4})
    assert config.num_labels == 4 and config.id2label[3] == "LABEL_3"


@pytest.mark.parametrize(
    "data,message",
    [
        ({"model_type": "gpt2"}, "unknown model_type 'gpt2'"),
        ({}, "unknown model_type None"),
        ({"model_type": "bert", "hidden_size": 100, "num_attention_heads": 12}, "hidden_size=100"),
        ({"model_type": "mobilebert", "normalization_type": "batch_norm"}, "normalization_type"),
        ({"model_type": "squeezebert", "q_groups": 5}, "q_groups=5"),
        ({"model_type": "squeezebert", "embedding_size": 128}, "embedding_size == hidden_size"),
    ],
)
def test_bad_configs_name_the_problem(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)
