"""Blocks the four architectures are built from.

Attribute names are transformers' (``dense``, ``LayerNorm``, ``query`` ...) because they
become the state-dict keys, and checkpoints users already own must load unchanged.

Everything here is export-friendly: no data-dependent Python branches, no tensors created
from Python numbers inside forward, shapes taken from inputs, position ids sliced from a
buffer (not ``arange``), and the attention mask turned into an additive bias with a finite
constant (see ``MASK_BIAS``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pocketbert.errors import ConfigError

# Added to attention scores of padded keys. exp(-10000) is exactly 0 in float32, so the
# result equals transformers' (which adds finfo.min), but unlike finfo.min it survives a cast
# to float16 (finfo.min -> -inf, and 0 * -inf = NaN) and keeps int8 calibration ranges sane.
MASK_BIAS = -10000.0


# ---- activations ------------------------------------------------------------------------
class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


_ACTIVATIONS = {
    "gelu": lambda: nn.GELU(),
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
    "gelu_fast": lambda: nn.GELU(approximate="tanh"),
    "quick_gelu": QuickGELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "mish": nn.Mish,
}


def activation(name: str) -> nn.Module:
    """transformers' ACT2FN by name (the subset BERT-family configs use)."""
    if name not in _ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r} (known: {', '.join(sorted(_ACTIVATIONS))})")
    return _ACTIVATIONS[name]()


# ---- normalisation ----------------------------------------------------------------------
class NoNorm(nn.Module):
    """MobileBERT's replacement for LayerNorm: an element-wise affine map (no statistics)."""

    def __init__(self, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


def norm(kind: str, size: int, eps: float) -> nn.Module:
    if kind == "layer_norm":
        return nn.LayerNorm(size, eps=eps)
    if kind == "no_norm":
        return NoNorm(size)
    raise ConfigError(f"unknown normalization_type {kind!r}")


# ---- attention ----------------------------------------------------------------------------
def attention_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, S] mask of 1 (keep) / 0 (pad) -> [B, 1, 1, S] additive bias for the scores."""
    keep = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - keep) * MASK_BIAS


def attend(
    query: torch.Tensor, key_t: torch.Tensor, value: torch.Tensor, bias: torch.Tensor, head_size: int
) -> torch.Tensor:
    """Scaled dot-product attention over heads.

    query [B, h, S, d], key_t [B, h, d, S] (keys already transposed: SqueezeBERT's
    channels-first layout gives them that way for free), value [B, h, S, d],
    bias [B, 1, 1, S] -> context [B, h, S, d]. The scale is a Python constant from
    ``head_size`` (not computed from a traced shape, which TorchScript would keep as a Pow),
    applied as a division: MatMul -> Div -> Add -> Softmax is the pattern onnxruntime's
    transformer optimizer fuses into one Attention op.
    """
    scores = torch.matmul(query, key_t) / math.sqrt(head_size)  # [B, h, S, S]
    probs = torch.softmax(scores + bias, dim=-1)
    return torch.matmul(probs, value)


def query_rows(hidden: torch.Tensor, first_token_only: bool) -> torch.Tensor:
    """[B, S, H] -> the rows a layer computes queries (and everything after them) for:
    all of them, or [B, 1, H] when only the first token's output is read."""
    return hidden[:, :1] if first_token_only else hidden


def encoder_steps(layers: nn.ModuleList, first_token_only: bool) -> list[tuple[nn.Module, bool]]:
    """Each layer with whether it computes its output for the first token alone: the model
    file runs the loop (``hidden = layer(hidden, bias, only_first)``), so its forward reads
    top to bottom in one file. With ``first_token_only`` the last layer does: a sequence
    classifier reads nothing else (the pooler, DistilBERT's pre_classifier), and every other
    row of the last layer is work thrown away. The keys and values still come from every
    token, so the first token's output is exactly the full model's, at 1/S of the last
    layer's query, projection and feed-forward cost (BERT-base: -7% of the FLOPs at seq 128,
    DistilBERT -14%)."""
    last = len(layers) - 1
    return [(layer, first_token_only and index == last) for index, layer in enumerate(layers)]


def query_counts(num_layers: int, seq_len: int, first_token_only: bool) -> list[int]:
    """Query rows per sequence in each layer (what ``encoder_steps`` plans), for FLOP counts."""
    return [1 if first_token_only and index == num_layers - 1 else seq_len for index in range(num_layers)]


def split_heads(x: torch.Tensor, head_size: int) -> torch.Tensor:
    """[B, S, h*d] -> [B, h, S, d] (S: the tokens, or just the rows that ask queries)."""
    return x.view(x.shape[0], x.shape[1], -1, head_size).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, h, S, d] -> [B, S, h*d]."""
    return x.transpose(1, 2).flatten(2)


def multi_head_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor, head_size: int
) -> torch.Tensor:
    """Projected [B, S, h*d] query/key/value -> context [B, S, h*d]."""
    key_t = split_heads(key, head_size).transpose(-1, -2)  # [B, h, d, S]
    context = attend(split_heads(query, head_size), key_t, split_heads(value, head_size), bias, head_size)
    return merge_heads(context)


class SelfAttention(nn.Module):
    """BERT's attention projections (``query``, ``key``, ``value``); MobileBERT feeds them
    different inputs (bottlenecked query/key, full-width value)."""

    def __init__(self, query_in: int, value_in: int, width: int, num_heads: int):
        super().__init__()
        self.head_size = width // num_heads
        self.query = nn.Linear(query_in, width)
        self.key = nn.Linear(query_in, width)
        self.value = nn.Linear(value_in, width)

    def forward(
        self, query_in: torch.Tensor, key_in: torch.Tensor, value_in: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        return multi_head_attention(
            self.query(query_in), self.key(key_in), self.value(value_in), bias, self.head_size
        )


# ---- dense blocks -------------------------------------------------------------------------
class DenseNorm(nn.Module):
    """``LayerNorm(act(dense(x)) + residual)``: BERT's self-output and output, MobileBERT's
    bottlenecks and FFN outputs, the MLM transform; ``act`` and ``residual`` optional."""

    def __init__(self, d_in: int, d_out: int, norm_kind: str, eps: float, act: str | None = None):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        if act is not None:
            self.transform_act_fn = activation(act)
        self.LayerNorm = norm(norm_kind, d_out, eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        x = self.dense(x)
        if hasattr(self, "transform_act_fn"):
            x = self.transform_act_fn(x)
        if residual is not None:
            x = x + residual
        return self.LayerNorm(x)


class DenseActivation(nn.Module):
    """``act(dense(x))``: the intermediate (expansion) layer of a BERT feed-forward."""

    def __init__(self, d_in: int, d_out: int, act: str):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.intermediate_act_fn = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(x))


class Pooler(nn.Module):
    """First token -> dense -> tanh; MobileBERT may skip the dense (classifier_activation)."""

    def __init__(self, hidden_size: int, activate: bool = True):
        super().__init__()
        if activate:
            self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        first = hidden[:, 0]  # [B, H]
        if not hasattr(self, "dense"):
            return first
        return torch.tanh(self.dense(first))


# ---- embeddings ---------------------------------------------------------------------------
class Embeddings(nn.Module):
    """Word + position (+ token type) embeddings, then a norm.

    ``word_size`` is the width of the word table; ``hidden_size`` that of the others and
    of the output. Only MobileBERT makes them differ (it projects words up in
    ``embed_words``). ``type_vocab_size=0`` drops token types (DistilBERT).
    """

    def __init__(
        self,
        vocab_size: int,
        word_size: int,
        hidden_size: int,
        max_positions: int,
        type_vocab_size: int,
        norm_kind: str,
        eps: float,
        pad_token_id: int | None,
    ):
        super().__init__()
        pad = pad_token_id if pad_token_id is not None and 0 <= pad_token_id < vocab_size else None
        self.word_embeddings = nn.Embedding(vocab_size, word_size, padding_idx=pad)
        self.position_embeddings = nn.Embedding(max_positions, hidden_size)
        if type_vocab_size > 0:
            self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)
        self.LayerNorm = norm(norm_kind, hidden_size, eps)
        # sliced, not built with arange, so exporters see no stray constants
        self.register_buffer("position_ids", torch.arange(max_positions)[None, :], persistent=False)

    def embed_words(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)  # [B, S, word_size]

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        positions = self.position_ids[:, : input_ids.shape[1]]  # [1, S]
        x = self.embed_words(input_ids) + self.position_embeddings(positions)  # [B, S, H]
        if hasattr(self, "token_type_embeddings"):
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x)


# ---- language-model heads -----------------------------------------------------------------
class LMPredictionHead(nn.Module):
    """BERT's MLM head: transform (dense, act, LayerNorm) then a decoder. With
    tie_word_embeddings the decoder's weight is the word table and its bias is ``bias``
    (the model ties them, as transformers does)."""

    def __init__(self, hidden_size: int, vocab_size: int, act: str, eps: float, word_size: int | None = None):
        super().__init__()
        self.transform = DenseNorm(hidden_size, hidden_size, "layer_norm", eps, act=act)
        self.decoder = nn.Linear(word_size or hidden_size, vocab_size)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden))  # [B, S, vocab]


class MLMHead(nn.Module):
    """The ``cls`` module of BERT-style masked-LM models: just ``predictions``."""

    def __init__(self, predictions: nn.Module):
        super().__init__()
        self.predictions = predictions

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.predictions(hidden)


class NSPHead(nn.Module):
    """The ``cls`` module of next-sentence prediction: two logits from the pooled output."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.seq_relationship = nn.Linear(hidden_size, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.seq_relationship(pooled)


class PreTrainingHeads(nn.Module):
    """The ``cls`` module of pre-training models: MLM ``predictions`` + NSP ``seq_relationship``."""

    def __init__(self, predictions: nn.Module, hidden_size: int):
        super().__init__()
        self.predictions = predictions
        self.seq_relationship = nn.Linear(hidden_size, 2)


def sinusoidal_table(positions: int, dim: int) -> torch.Tensor:
    """DistilBERT's fixed sin/cos position table [positions, dim] (computed in float64)."""
    pos = torch.arange(positions, dtype=torch.float64)[:, None]
    rate = torch.pow(10000.0, 2 * (torch.arange(dim, dtype=torch.float64) // 2) / dim)
    angle = pos / rate  # [P, D]
    table = torch.empty(positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float()


def init_weights(module: nn.Module, std: float) -> None:
    """transformers' initialisation: N(0, std) weights, zero biases, unit norms, zero pad row.

    A tied parameter (the MLM decoder's weight is the word table) is initialised once, by
    the module that registered it first, so the embedding's zeroed pad row stays zero.
    """
    owner: dict[int, nn.Module] = {}
    for m in module.modules():
        for p in m.parameters(recurse=False):
            owner.setdefault(id(p), m)

    def owns(m: nn.Module, name: str) -> bool:
        p = getattr(m, name, None)
        return isinstance(p, nn.Parameter) and owner[id(p)] is m

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Embedding)) and owns(m, "weight"):
                m.weight.normal_(0.0, std)
                if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            if isinstance(m, (nn.LayerNorm, NoNorm)):
                m.weight.fill_(1.0)
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.LayerNorm, NoNorm, LMPredictionHead)) and owns(m, "bias"):
                m.bias.zero_()


__all__ = [
    "MASK_BIAS",
    "activation",
    "attend",
    "attention_bias",
    "DenseActivation",
    "DenseNorm",
    "Embeddings",
    "encoder_steps",
    "LMPredictionHead",
    "MLMHead",
    "NSPHead",
    "NoNorm",
    "Pooler",
    "PreTrainingHeads",
    "SelfAttention",
    "init_weights",
    "merge_heads",
    "multi_head_attention",
    "norm",
    "query_counts",
    "query_rows",
    "sinusoidal_table",
    "split_heads",
]
