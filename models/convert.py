"""A BERT checkpoint's function in another architecture's graph.

``bert_as("mobilebert", "path/to/all-MiniLM-L6-v2", "out/minilm-as-mobilebert")`` writes a
MobileBERT checkpoint directory (config.json, model.safetensors, the tokenizer files and the
sentence-transformers files) whose outputs equal the BERT's: the same function, computed by
another architecture's modules. No trained MobileBERT, SqueezeBERT or DistilBERT checkpoint
is at hand where pocketbert is tested, and random weights have none of the outlier channels
that break int8; these forms let real weights run through every architecture's export and
quantization paths.

They are **not** the real architectures' models: a MobileBERT form has no bottlenecks, no
NoNorm and one feed-forward per layer (the paper's has four), a SqueezeBERT form has no
grouped convolutions. Figures measured on them are a trained BERT's in that graph, not
MobileBERT's or SqueezeBERT's own.

How each is built (the BERT's layers are carried one to one):

* DistilBERT: the same layer under other names. It has no token types: token-type row 0 is
  added to the position table (exact for single-segment inputs, the only ones DistilBERT
  takes), and it has no pooler (BERT's is dropped).
* SqueezeBERT: every group count 1, so each grouped 1x1 convolution is a dense layer: a
  Linear weight [out, in] becomes a Conv1d weight [out, in, 1]. Embeddings, LayerNorms and
  the pooler are copied.
* MobileBERT: no bottleneck, one feed-forward, ``normalization_type="layer_norm"``,
  ``embedding_size = hidden_size``, BERT's activation, and the trigram projection
  (a Linear over [next, this, previous] token embeddings) set to [0 | I | 0] so it passes
  each token's own embedding through. Two of its norms (embeddings, feed-forward output) use
  torch's default eps 1e-5 whatever the config says (as transformers builds them): unscaled,
  MiniLM's last_hidden_state would move by 1.5e-3. Their inputs are therefore scaled by ``norm_scale``
  (a power of two, default 64), which divides their effective eps by its square
  (1e-5 / 64^2 = 2.4e-9): the trigram projection's identity block and the position and
  token-type tables carry the scale into the embedding norm; the attention-output norm's
  weight and bias (so the residual) and the FFN output dense layer carry it into the
  FFN-output norm, and the FFN's first dense layer takes it back out of its input. A power of
  two scales floats exactly, so the only difference from BERT left is that eps (on MiniLM,
  3.7e-7 computed in float64; in float32, 2.8e-6, the size of the other forms' rounding); 64
  keeps MiniLM's largest activations (~200) far below float16's range (1024 would give
  float32 outputs bit-identical to BERT's, and overflow float16).

The BERT must use absolute positions, and for DistilBERT and SqueezeBERT (whose encoder
norms hard-code eps 1e-12, as transformers does) ``layer_norm_eps`` 1e-12, as BERT's
checkpoints do.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch

from pocketbert.atomic import atomic_directory
from pocketbert.errors import CheckpointError, PocketbertError
from pocketbert.models import distilbert, mobilebert, squeezebert, tasks
from pocketbert.models.bert import BertConfig
from pocketbert.models.checkpoint import load_pretrained, resolve
from pocketbert.models.config_base import ModelConfig
from pocketbert.models.registry import get_architecture
from pocketbert.models.sentence_embedding import MODULES_NAME, SBERT_CONFIG_NAME
from pocketbert.models.weights import save_pretrained
from pocketbert.models.wordpiece import SPECIAL_TOKENS_MAP_NAME, TOKENIZER_CONFIG_NAME, TOKENIZER_NAME, VOCAB_NAME
from pocketbert.textfile import parse_json

# config.json key recording that a checkpoint is a BERT's function in this graph (transformers
# keeps unknown keys as attributes; pocketbert keeps them in ``extra``).
FORM_KEY = "pocketbert_bert_form"
FORMS = ("distilbert", "squeezebert", "mobilebert")
DEFAULT_NORM_SCALE = 64.0
# sentence-transformers' files besides modules.json and the module folders it names
SENTENCE_TRANSFORMERS_FILES = (SBERT_CONFIG_NAME, "config_sentence_transformers.json")
TOKENIZER_FILES = (VOCAB_NAME, TOKENIZER_NAME, SPECIAL_TOKENS_MAP_NAME)

State = dict[str, torch.Tensor]


def _layers(config: BertConfig):
    return range(config.num_hidden_layers)


def _shared(bert: BertConfig) -> dict:
    return dict(vocab_size=bert.vocab_size, max_position_embeddings=bert.max_position_embeddings,
                initializer_range=bert.initializer_range, pad_token_id=bert.pad_token_id)


# ---- DistilBERT -------------------------------------------------------------------------------
def _as_distilbert(bert: BertConfig, state: State) -> tuple[ModelConfig, State]:
    config = distilbert.DistilBertConfig(
        **_shared(bert), dim=bert.hidden_size, hidden_dim=bert.intermediate_size, n_layers=bert.num_hidden_layers,
        n_heads=bert.num_attention_heads, activation=bert.hidden_act, sinusoidal_pos_embds=False,
    )
    positions = state["embeddings.position_embeddings.weight"]
    if "embeddings.token_type_embeddings.weight" in state:  # single-segment inputs: type 0 everywhere
        positions = positions + state["embeddings.token_type_embeddings.weight"][0]
    out = {
        "embeddings.word_embeddings.weight": state["embeddings.word_embeddings.weight"],
        "embeddings.position_embeddings.weight": positions,
        "embeddings.LayerNorm.weight": state["embeddings.LayerNorm.weight"],
        "embeddings.LayerNorm.bias": state["embeddings.LayerNorm.bias"],
    }
    names = {
        "attention.self.query": "attention.q_lin", "attention.self.key": "attention.k_lin",
        "attention.self.value": "attention.v_lin", "attention.output.dense": "attention.out_lin",
        "attention.output.LayerNorm": "sa_layer_norm", "intermediate.dense": "ffn.lin1",
        "output.dense": "ffn.lin2", "output.LayerNorm": "output_layer_norm",
    }
    for i in _layers(bert):
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                out[f"transformer.layer.{i}.{theirs}.{p}"] = state[f"encoder.layer.{i}.{ours}.{p}"]
    return config, out  # BERT's pooler is dropped: DistilBERT has none


# ---- SqueezeBERT ------------------------------------------------------------------------------
def _as_squeezebert(bert: BertConfig, state: State) -> tuple[ModelConfig, State]:
    config = squeezebert.SqueezeBertConfig(
        **_shared(bert), hidden_size=bert.hidden_size, embedding_size=bert.hidden_size,
        num_hidden_layers=bert.num_hidden_layers, num_attention_heads=bert.num_attention_heads,
        intermediate_size=bert.intermediate_size, hidden_act=bert.hidden_act, type_vocab_size=bert.type_vocab_size,
        layer_norm_eps=bert.layer_norm_eps, q_groups=1, k_groups=1, v_groups=1, post_attention_groups=1,
        intermediate_groups=1, output_groups=1,
    )
    out = {k: v for k, v in state.items() if k.startswith(("embeddings.", "pooler."))}
    convs = {
        "attention.self.query": "attention.query", "attention.self.key": "attention.key",
        "attention.self.value": "attention.value", "attention.output.dense": "post_attention.conv1d",
        "intermediate.dense": "intermediate.conv1d", "output.dense": "output.conv1d",
    }
    norms = {"attention.output.LayerNorm": "post_attention.layernorm", "output.LayerNorm": "output.layernorm"}
    for i in _layers(bert):
        source, target = f"encoder.layer.{i}.", f"encoder.layers.{i}."
        for ours, theirs in convs.items():
            out[target + theirs + ".weight"] = state[source + ours + ".weight"][:, :, None]  # [out, in, 1]
            out[target + theirs + ".bias"] = state[source + ours + ".bias"]
        for ours, theirs in norms.items():
            for p in ("weight", "bias"):
                out[f"{target}{theirs}.{p}"] = state[f"{source}{ours}.{p}"]
    return config, out


# ---- MobileBERT -------------------------------------------------------------------------------
def _as_mobilebert(bert: BertConfig, state: State, scale: float) -> tuple[ModelConfig, State]:
    h = bert.hidden_size
    config = mobilebert.MobileBertConfig(
        **_shared(bert), hidden_size=h, embedding_size=h, num_hidden_layers=bert.num_hidden_layers,
        num_attention_heads=bert.num_attention_heads, intermediate_size=bert.intermediate_size,
        hidden_act=bert.hidden_act, type_vocab_size=bert.type_vocab_size, layer_norm_eps=bert.layer_norm_eps,
        trigram_input=True, use_bottleneck=False, intra_bottleneck_size=h, use_bottleneck_attention=False,
        key_query_shared_bottleneck=False, num_feedforward_networks=1, normalization_type="layer_norm",
        classifier_activation=True,
    )
    # [next | this | previous] -> this, times the scale the embedding norm's input carries
    trigram = torch.zeros(h, 3 * h)
    trigram[:, h:2 * h] = torch.eye(h) * scale
    out = {
        "embeddings.word_embeddings.weight": state["embeddings.word_embeddings.weight"],
        "embeddings.embedding_transformation.weight": trigram,
        "embeddings.embedding_transformation.bias": torch.zeros(h),
        "embeddings.position_embeddings.weight": state["embeddings.position_embeddings.weight"] * scale,
        "embeddings.token_type_embeddings.weight": state["embeddings.token_type_embeddings.weight"] * scale,
        "embeddings.LayerNorm.weight": state["embeddings.LayerNorm.weight"],
        "embeddings.LayerNorm.bias": state["embeddings.LayerNorm.bias"],
    }
    out.update({k: v for k, v in state.items() if k.startswith("pooler.")})
    for i in _layers(bert):
        layer = f"encoder.layer.{i}."  # the same names in both; four of them scaled
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                     "output.LayerNorm"):
            for p in ("weight", "bias"):
                out[f"{layer}{name}.{p}"] = state[f"{layer}{name}.{p}"]
        # the attention output (the FFN's input and its residual) comes out scaled ...
        for p in ("weight", "bias"):
            out[f"{layer}attention.output.LayerNorm.{p}"] = state[f"{layer}attention.output.LayerNorm.{p}"] * scale
        # ... the FFN's first layer takes the scale back out of its input ...
        out[f"{layer}intermediate.dense.weight"] = state[f"{layer}intermediate.dense.weight"] / scale
        out[f"{layer}intermediate.dense.bias"] = state[f"{layer}intermediate.dense.bias"]
        # ... and its output is scaled like the residual it is added to: the FFN-output norm sees scale * x
        for p in ("weight", "bias"):
            out[f"{layer}output.dense.{p}"] = state[f"{layer}output.dense.{p}"] * scale
    return config, out


# ---- the checkpoint -------------------------------------------------------------------------
def _check_source(config: ModelConfig, arch: str, source: Path) -> None:
    if not isinstance(config, BertConfig) or config.model_type != "bert":
        raise PocketbertError(f"{source}: a {config.model_type} checkpoint; bert_as carries a BERT's weights")
    if config.extra.get("position_embedding_type", "absolute") != "absolute":
        raise PocketbertError(f"{source}: position_embedding_type {config.extra['position_embedding_type']!r}; "
                              "only absolute positions have a form in the other architectures")
    fixed = {"distilbert": distilbert.NORM_EPS, "squeezebert": squeezebert.ENCODER_NORM_EPS}.get(arch)
    if fixed is not None and config.layer_norm_eps != fixed:
        raise PocketbertError(f"{source}: layer_norm_eps={config.layer_norm_eps}, but {arch}'s norms use {fixed} "
                              "whatever the config says: its form would not compute the same function")


def _copy_files(source: Path, target: Path, tokenizer_class: str) -> None:
    """The tokenizer files (tokenizer_config.json naming the architecture's class, so that
    transformers' AutoTokenizer gives DistilBERT no token_type_ids) and the
    sentence-transformers files (modules.json and the module folders it names)."""
    for name in (*TOKENIZER_FILES, *SENTENCE_TRANSFORMERS_FILES):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    if (source / TOKENIZER_CONFIG_NAME).is_file():
        path = source / TOKENIZER_CONFIG_NAME
        settings = parse_json(path.read_text(encoding="utf-8"), str(path), CheckpointError)
        settings = settings if isinstance(settings, dict) else {}
        settings["tokenizer_class"] = tokenizer_class
        (target / TOKENIZER_CONFIG_NAME).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    if (source / MODULES_NAME).is_file():
        shutil.copyfile(source / MODULES_NAME, target / MODULES_NAME)
        modules = parse_json((source / MODULES_NAME).read_text(encoding="utf-8"), str(source / MODULES_NAME),
                             CheckpointError)
        for module in modules if isinstance(modules, list) else ():
            folder = str(module.get("path", "")) if isinstance(module, dict) else ""
            inside = (target / folder).resolve().is_relative_to(target.resolve())
            if folder not in ("", ".") and inside and (source / folder).is_dir():
                shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)


def bert_as(arch: str, source_dir: str | Path, out_dir: str | Path, norm_scale: float = DEFAULT_NORM_SCALE,
            force: bool = False) -> Path:
    """Write to ``out_dir`` a checkpoint of ``arch`` (distilbert, squeezebert, mobilebert)
    computing the BERT checkpoint ``source_dir``'s function: the same last_hidden_state (and
    pooler output, where the architecture has a pooler) up to float rounding, and for
    MobileBERT up to its fixed-eps norms' eps / ``norm_scale``^2 (see the module docstring).

    These are the BERT's function in another graph, not the real architectures' models
    (MobileBERT's bottlenecks, NoNorm and four FFNs, SqueezeBERT's grouped convolutions)."""
    if arch not in FORMS:
        raise PocketbertError(f"bert_as: no BERT form for {arch!r} (known: {', '.join(FORMS)})")
    exponent = math.log2(norm_scale) if norm_scale > 0 else math.nan
    if not exponent.is_integer():
        raise PocketbertError(f"norm_scale must be a power of two (it scales floats exactly), got {norm_scale}")
    source = resolve(source_dir)
    bert = load_pretrained(source, task=tasks.FEATURE_EXTRACTION.name)  # a task checkpoint: its encoder
    _check_source(bert.config, arch, source)
    state = {k: v.detach().float() for k, v in bert.state_dict().items()}
    if arch == "distilbert":
        config, weights = _as_distilbert(bert.config, state)
    elif arch == "squeezebert":
        config, weights = _as_squeezebert(bert.config, state)
    else:
        config, weights = _as_mobilebert(bert.config, state, norm_scale)
    form: dict = {"from": "bert"}
    if arch == "mobilebert":
        form["norm_input_scale"] = norm_scale
    config = config.replace(extra={FORM_KEY: form})
    architecture = get_architecture(arch)
    model = architecture.backbone(config)
    model.load_state_dict(weights, strict=True)  # every weight of the graph, nothing else
    with atomic_directory(out_dir, force=force) as tmp:
        save_pretrained(model, tmp)
        _copy_files(source, tmp, architecture.tokenizer_class.__name__.removesuffix("Fast"))
    return Path(out_dir)


__all__ = ["DEFAULT_NORM_SCALE", "FORMS", "FORM_KEY", "bert_as"]
