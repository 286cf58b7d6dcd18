"""Our models and transformers' are the same functions on the same checkpoints.

For every registered (architecture, task) and several non-default architecture options:
a transformers model saved with save_pretrained loads into ours with no warning and gives
the same outputs (max abs diff <= 1e-5) on right-padded batches of mixed lengths; ours
saved loads into transformers with no missing, unexpected or mismatched keys.
"""

from __future__ import annotations

import pytest
import torch
from helpers import hf, hf_class, hf_config, inputs_for, max_abs_diff, no_checkpoint_warnings, perturb, quiet

from pocketbert.models import registry

ATOL = 1e-5

# Non-default architecture options per architecture (on top of its fake config). Every
# registered architecture must appear here (test_every_architecture_has_variants).
VARIANTS: dict[str, dict[str, dict]] = {
    "mobilebert": {
        "default": {},
        "layer_norm": {"normalization_type": "layer_norm", "layer_norm_eps": 1e-7},
        "no_trigram_projected": {"trigram_input": False, "embedding_size": 32},
        "no_trigram_full_width": {"trigram_input": False, "embedding_size": 64},
        "no_bottleneck": {"use_bottleneck": False, "key_query_shared_bottleneck": False},
        "bottleneck_attention": {"use_bottleneck_attention": True, "key_query_shared_bottleneck": False},
        "single_ffn_gelu": {"num_feedforward_networks": 1, "hidden_act": "gelu"},
        "intra_48_no_classifier_act": {"intra_bottleneck_size": 48, "classifier_activation": False, "type_vocab_size": 3},
        "untied_labels": {"tie_word_embeddings": False, "num_labels": 5},
    },
    "squeezebert": {
        "default": {},
        "dense_groups": {"q_groups": 1, "k_groups": 1, "v_groups": 1, "intermediate_groups": 1, "output_groups": 1},
        "mixed_groups": {"q_groups": 2, "k_groups": 8, "v_groups": 4, "post_attention_groups": 2,
                         "intermediate_groups": 8, "output_groups": 2},
        "relu_eps": {"hidden_act": "relu", "layer_norm_eps": 1e-6, "num_labels": 4},
    },
    "distilbert": {
        "default": {},
        "sinusoidal": {"sinusoidal_pos_embds": True},
        "relu_labels": {"activation": "relu", "num_labels": 3},
    },
    "bert": {
        "default": {},
        "gelu_new_types": {"hidden_act": "gelu_new", "type_vocab_size": 4, "layer_norm_eps": 1e-6},
        "untied_labels": {"tie_word_embeddings": False, "num_labels": 3},
    },
}


def make_config(arch_name: str, changes: dict, task: str):
    arch = registry.get_architecture(arch_name)
    changes = dict(changes)
    num_labels = changes.pop("num_labels", None)
    if task == "question-answering":
        num_labels = None  # start and end: always 2
    config = arch.fake_config(**changes)
    return config.with_labels(num_labels) if num_labels else config


CASES = [
    pytest.param(arch, task, variant, id=f"{arch}-{task}-{variant}")
    for arch, task in registry.transformers_pairs()
    for variant in VARIANTS.get(arch, {"default": {}})
]


@pytest.mark.unit
def test_every_architecture_has_variants():
    assert set(VARIANTS) == set(registry.ARCHITECTURES)


# The classes the transformers docs list for each model (issue 2).
DOCUMENTED = {
    "MobileBert": ["Model", "ForPreTraining", "ForMaskedLM", "ForNextSentencePrediction", "ForSequenceClassification",
                   "ForMultipleChoice", "ForTokenClassification", "ForQuestionAnswering"],
    "SqueezeBert": ["Model", "ForMaskedLM", "ForSequenceClassification", "ForMultipleChoice",
                    "ForTokenClassification", "ForQuestionAnswering"],
    "DistilBert": ["Model", "ForMaskedLM", "ForSequenceClassification", "ForMultipleChoice",
                   "ForTokenClassification", "ForQuestionAnswering"],
    "Bert": ["Model", "ForMaskedLM", "ForSequenceClassification", "ForQuestionAnswering"],
}


@pytest.mark.unit
def test_registry_holds_exactly_the_24_documented_classes():
    documented = {prefix + suffix for prefix, suffixes in DOCUMENTED.items() for suffix in suffixes}
    registered = {registry.get_architecture(a).model_class(t).__name__ for a, t in registry.transformers_pairs()}
    assert len(documented) == 24
    assert registered == documented
    for name in registered:
        assert hasattr(hf(), name), f"transformers has no {name}"


@pytest.mark.parametrize("arch,task,variant", CASES)
@pytest.mark.unit
def test_transformers_checkpoint_loads_and_matches(arch, task, variant, tmp_path):
    config = make_config(arch, VARIANTS[arch][variant], task)
    cls = registry.get_architecture(arch).model_class(task)
    torch.manual_seed(1)
    theirs = perturb(hf_class(cls)(hf_config(config))).eval()
    with quiet():
        theirs.save_pretrained(tmp_path)
    with no_checkpoint_warnings():
        ours = cls.from_pretrained(tmp_path)
    inputs = inputs_for(ours)
    with torch.no_grad():
        expected = theirs(**inputs)
        got = ours(**inputs)
    assert tuple(got) == ours.output_names
    diffs = max_abs_diff(got, expected, ours.output_names)
    assert max(diffs.values()) <= ATOL, diffs


@pytest.mark.parametrize("arch,task,variant", CASES)
@pytest.mark.unit
def test_our_checkpoint_loads_into_transformers(arch, task, variant, tmp_path):
    config = make_config(arch, VARIANTS[arch][variant], task)
    cls = registry.get_architecture(arch).model_class(task)
    ours = perturb(cls(config).init_weights(seed=3), seed=4).eval()
    ours.save_pretrained(tmp_path)
    with quiet():
        theirs, info = hf_class(cls).from_pretrained(tmp_path, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    assert not problems
    inputs = inputs_for(ours, seed=5)
    with torch.no_grad():
        diffs = max_abs_diff(ours(**inputs), theirs.eval()(**inputs), ours.output_names)
    assert max(diffs.values()) <= ATOL, diffs


@pytest.mark.unit
def test_transformers_reads_our_config_back_unchanged(tmp_path):
    for arch in registry.ARCHITECTURES.values():
        config = arch.default_config()
        config.save_pretrained(tmp_path)
        theirs = hf().AutoConfig.from_pretrained(tmp_path)
        for name in config.field_names():
            if name in ("extra", "id2label", "label2id", "architectures"):
                continue
            assert getattr(theirs, name) == getattr(config, name), (arch.name, name)


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(registry.ARCHITECTURES))
def test_paper_size_models_match_at_seq_128(arch, tmp_path):
    """The full-size default configs (the ones benchmarks use), transformers -> ours."""
    spec = registry.get_architecture(arch)
    cls = spec.model_class("fill-mask")
    torch.manual_seed(0)
    theirs = hf_class(cls)(hf_config(spec.default_config())).eval()
    with quiet():
        theirs.save_pretrained(tmp_path)
    with no_checkpoint_warnings():
        ours = cls.from_pretrained(tmp_path)
    inputs = inputs_for(ours, batch=2, seq=128)
    with torch.no_grad():
        diffs = max_abs_diff(ours(**inputs), theirs(**inputs), ours.output_names)
    print(f"{arch}: max abs diff {diffs}")
    assert max(diffs.values()) <= ATOL, diffs
