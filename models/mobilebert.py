"""MobileBERT (arXiv 2004.02984): a 24-layer BERT made thin by bottlenecks.

Each layer squeezes the 512-wide stream to 128 (``bottleneck``), attends and runs four
stacked feed-forwards at 128, then expands back (``output.bottleneck``). ``no_norm``
replaces LayerNorm by an element-wise affine map, and the word table is 128 wide with a
trigram convolution (concat of left/self/right neighbours) lifting it to 512.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pocketbert.errors import ConfigError
from pocketbert.models import blocks
from pocketbert.models.architecture import Architecture, FlopCounter
from pocketbert.models.bert import BertConfig, BertEncoder
from pocketbert.models.config_base import ModelConfig, check_divisible
from pocketbert.models.modeling import (
    Backbone,
    ForMaskedLM,
    ForMultipleChoice,
    ForNextSentencePrediction,
    ForPreTraining,
    ForQuestionAnswering,
    ForSentenceEmbedding,
    ForSequenceClassification,
    ForTokenClassification,
    attention_inputs,
)
from pocketbert.models.outputs import ModelOutput
from pocketbert.models.wordpiece import BertTokenizerFast


@dataclass
class MobileBertConfig(BertConfig):
    """MobileBERT (arXiv 2004.02984): 24 thin bottlenecked layers, 25.3M params."""

    model_type: ClassVar[str] = "mobilebert"
    derived_keys: ClassVar[tuple[str, ...]] = ("true_hidden_size",)

    hidden_size: int = 512
    num_hidden_layers: int = 24
    num_attention_heads: int = 4
    intermediate_size: int = 512
    hidden_act: str = "relu"
    embedding_size: int = 128
    trigram_input: bool = True
    use_bottleneck: bool = True
    intra_bottleneck_size: int = 128
    use_bottleneck_attention: bool = False
    key_query_shared_bottleneck: bool = True
    num_feedforward_networks: int = 4
    normalization_type: str = "no_norm"
    classifier_activation: bool = True

    @property
    def true_hidden_size(self) -> int:
        """Width inside a block: the bottleneck when there is one."""
        return self.intra_bottleneck_size if self.use_bottleneck else self.hidden_size

    def validate(self) -> None:
        ModelConfig.validate(self)
        if self.normalization_type not in ("no_norm", "layer_norm"):
            raise ConfigError(
                f"normalization_type must be 'no_norm' or 'layer_norm', got {self.normalization_type!r}"
            )
        if self.num_feedforward_networks < 1:
            raise ConfigError("num_feedforward_networks must be >= 1")
        check_divisible(self, "true_hidden_size", "num_attention_heads")
        if (
            self.use_bottleneck
            and not (self.use_bottleneck_attention or self.key_query_shared_bottleneck)
            and self.intra_bottleneck_size != self.hidden_size
        ):
            raise ConfigError(
                "use_bottleneck without use_bottleneck_attention or key_query_shared_bottleneck feeds "
                f"hidden_size={self.hidden_size} states to {self.intra_bottleneck_size}-wide attention "
                "projections (transformers fails on it too)"
            )
        if self.embedding_size > self.hidden_size:
            raise ConfigError(
                f"embedding_size={self.embedding_size} exceeds hidden_size={self.hidden_size}"
            )


# transformers builds two of MobileBERT's norms without layer_norm_eps (embeddings and the
# FFN output), so with normalization_type="layer_norm" they use torch's default.
TORCH_DEFAULT_EPS = 1e-5


class MobileBertEmbeddings(blocks.Embeddings):
    def __init__(self, config: MobileBertConfig):
        super().__init__(
            config.vocab_size,
            config.embedding_size,
            config.hidden_size,
            config.max_position_embeddings,
            config.type_vocab_size,
            config.normalization_type,
            TORCH_DEFAULT_EPS,
            config.pad_token_id,
        )
        self.trigram_input = config.trigram_input
        self.project = config.trigram_input or config.embedding_size != config.hidden_size
        width = config.embedding_size * (3 if config.trigram_input else 1)
        self.embedding_transformation = nn.Linear(width, config.hidden_size)

    def embed_words(self, input_ids: torch.Tensor) -> torch.Tensor:
        words = self.word_embeddings(input_ids)  # [B, S, E]
        if self.trigram_input:
            right = F.pad(words[:, 1:], (0, 0, 0, 1))  # token i sees i+1; zero after the end
            left = F.pad(words[:, :-1], (0, 0, 1, 0))  # token i sees i-1; zero before the start
            words = torch.cat([right, words, left], dim=2)  # [B, S, 3E]
        if self.project:
            words = self.embedding_transformation(words)  # [B, S, H]
        return words


class Bottleneck(nn.Module):
    """H -> true_hidden_size projections feeding the attention (and the residual path)."""

    def __init__(self, config: MobileBertConfig):
        super().__init__()
        args = (config.hidden_size, config.intra_bottleneck_size, config.normalization_type, config.layer_norm_eps)
        self.input = blocks.DenseNorm(*args)
        if config.key_query_shared_bottleneck:
            self.attention = blocks.DenseNorm(*args)


class MobileBertAttention(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        width = config.true_hidden_size
        value_in = width if config.use_bottleneck_attention else config.hidden_size
        self.self = blocks.SelfAttention(width, value_in, width, config.num_attention_heads)
        self.output = blocks.DenseNorm(width, width, config.normalization_type, config.layer_norm_eps)


class FFNLayer(nn.Module):
    """One of the extra stacked feed-forwards inside a MobileBERT layer (at bottleneck width)."""

    def __init__(self, config: MobileBertConfig):
        super().__init__()
        width = config.true_hidden_size
        self.intermediate = blocks.DenseActivation(width, config.intermediate_size, config.hidden_act)
        self.output = blocks.DenseNorm(
            config.intermediate_size, width, config.normalization_type, config.layer_norm_eps
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.intermediate(x), x)


class MobileBertOutput(blocks.DenseNorm):
    """Last feed-forward output, then (with bottlenecks) the expansion back to hidden_size."""

    def __init__(self, config: MobileBertConfig):
        width = config.true_hidden_size
        super().__init__(config.intermediate_size, width, config.normalization_type, TORCH_DEFAULT_EPS)
        if config.use_bottleneck:
            self.bottleneck = blocks.DenseNorm(
                width, config.hidden_size, config.normalization_type, config.layer_norm_eps
            )

    def forward(self, x: torch.Tensor, residual: torch.Tensor, layer_input: torch.Tensor) -> torch.Tensor:
        x = super().forward(x, residual)  # [B, S, true_hidden]
        if hasattr(self, "bottleneck"):
            x = self.bottleneck(x, layer_input)  # [B, S, H]
        return x


class MobileBertLayer(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.use_bottleneck_attention = config.use_bottleneck_attention
        self.attention = MobileBertAttention(config)
        self.intermediate = blocks.DenseActivation(
            config.true_hidden_size, config.intermediate_size, config.hidden_act
        )
        self.output = MobileBertOutput(config)
        if config.use_bottleneck:
            self.bottleneck = Bottleneck(config)
        if config.num_feedforward_networks > 1:
            self.ffn = nn.ModuleList(FFNLayer(config) for _ in range(config.num_feedforward_networks - 1))

    def attention_inputs(self, hidden: torch.Tensor, first_token_only: bool) -> tuple[torch.Tensor, ...]:
        """[B, S, H] -> (query/key input [B, S, .], value input [B, S, .], residual input
        [B, S or 1, true_hidden]) of the attention. Unless the attention reads the squeezed
        stream, only the residual does: for the first token only, only that row is squeezed."""
        if not hasattr(self, "bottleneck"):
            return hidden, hidden, blocks.query_rows(hidden, first_token_only)
        if self.use_bottleneck_attention:
            squeezed = self.bottleneck.input(hidden)  # [B, S, true_hidden]
            return squeezed, squeezed, blocks.query_rows(squeezed, first_token_only)
        residual = self.bottleneck.input(blocks.query_rows(hidden, first_token_only))  # [B, S or 1, true_hidden]
        if hasattr(self.bottleneck, "attention"):
            return self.bottleneck.attention(hidden), hidden, residual
        return hidden, hidden, residual

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor, first_token_only: bool = False) -> torch.Tensor:
        query_key, value, layer_input = self.attention_inputs(hidden, first_token_only)
        queries = blocks.query_rows(query_key, first_token_only)  # [B, S or 1, true_hidden]
        context = self.attention.self(queries, query_key, value, bias)  # [B, S or 1, true_hidden]
        x = self.attention.output(context, layer_input)
        for ffn in getattr(self, "ffn", ()):
            x = ffn(x)
        return self.output(self.intermediate(x), x, blocks.query_rows(hidden, first_token_only))  # [B, S or 1, H]


class MobileBertLMPredictionHead(blocks.LMPredictionHead):
    """MLM head whose decoder is [embedding_size | extra ``dense`` rows] wide, so the tied
    128-wide word table can score 512-wide hidden states."""

    # forward reads dense's weight directly, so module-swapping quantizers must skip it; the
    # decoder stays float beside it: the two halves of one score keep one precision
    float_only_children = ("decoder", "dense")

    def __init__(self, config: MobileBertConfig):
        super().__init__(
            config.hidden_size, config.vocab_size, config.hidden_act, config.layer_norm_eps,
            word_size=config.embedding_size,
        )
        self.dense = nn.Linear(config.vocab_size, config.hidden_size - config.embedding_size, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """transformers scores against the concatenated [H, vocab] table; the same sum split
        in two keeps the graph free of weight arithmetic: the TFLite converter folded that
        concat of 15.6M floats for 16 s of a 20 s conversion, and the word table stays one."""
        hidden = self.transform(hidden)  # [B, S, H]
        words = self.decoder.in_features
        tied = self.decoder(hidden[..., :words])  # [B, S, vocab], with the bias
        return tied + hidden[..., words:].matmul(self.dense.weight)  # + [B, S, H - E] @ [H - E, vocab]


class MobileBertEncoder(BertEncoder):
    """BERT's container of MobileBERT layers, with the loop here so the forward reads in this file."""

    def __init__(self, config: MobileBertConfig):
        super().__init__(config, MobileBertLayer)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor, first_token_only: bool = False) -> torch.Tensor:
        for layer, only_first in blocks.encoder_steps(self.layer, first_token_only):
            hidden = layer(hidden, bias, only_first)  # [B, S, H]; [B, 1, H] after a first-token-only layer
        return hidden


class MobileBertModel(Backbone):
    config_class = MobileBertConfig
    base_model_prefix = "mobilebert"

    def __init__(self, config: MobileBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = MobileBertEmbeddings(config)
        self.encoder = MobileBertEncoder(config)
        self.pooler = blocks.Pooler(config.hidden_size, config.classifier_activation) if add_pooling_layer else None

    @staticmethod
    def build_lm_head(config: MobileBertConfig) -> nn.Module:
        return MobileBertLMPredictionHead(config)

    @classmethod
    def runs_pooler_dense(cls, config: MobileBertConfig, add_pooling_layer: bool) -> bool:
        # without classifier_activation the pooler returns the first token as is
        return add_pooling_layer and config.classifier_activation

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, first_token_only: bool = False) -> ModelOutput:
        hidden = self.embeddings(input_ids, token_type_ids)  # [B, S, H]
        bias = attention_inputs(input_ids, attention_mask, hidden.dtype)  # [B, 1, 1, S]
        return self.pool(self.encoder(hidden, bias, first_token_only))


class MobileBertForPreTraining(ForPreTraining):
    backbone_class = MobileBertModel


class MobileBertForMaskedLM(ForMaskedLM):
    backbone_class = MobileBertModel


class MobileBertForNextSentencePrediction(ForNextSentencePrediction):
    backbone_class = MobileBertModel


class MobileBertForSequenceClassification(ForSequenceClassification):
    backbone_class = MobileBertModel


class MobileBertForMultipleChoice(ForMultipleChoice):
    backbone_class = MobileBertModel


class MobileBertForTokenClassification(ForTokenClassification):
    backbone_class = MobileBertModel


class MobileBertForQuestionAnswering(ForQuestionAnswering):
    backbone_class = MobileBertModel


class MobileBertForSentenceEmbedding(ForSentenceEmbedding):
    backbone_class = MobileBertModel


class MobileBertTokenizerFast(BertTokenizerFast):
    """BERT's uncased WordPiece, under the name transformers gives MobileBERT's tokenizer."""


MobileBertTokenizer = MobileBertTokenizerFast  # the docs' "slow" name: the same implementation


def count_flops(
    count: FlopCounter, config: MobileBertConfig, batch: int, seq_len: int, first_token_only: bool = False
) -> None:
    """The embedding projection, then per layer: the bottleneck squeezes, attention at
    bottleneck width (the value from the full-width stream unless use_bottleneck_attention),
    the stacked feed-forwards and the expansion back to hidden_size.

    The paper's 5.7 G is 5.6% above what the architecture gives (5.39 G: 5.34 G encoder +
    0.05 G trigram projection); the SqueezeBERT paper counts the same model at 5.36 G, which
    this matches (+0.5%). The same count gives MobileBERT-TINY (2 FFNs, bottlenecked
    attention) 3.07 G against its paper's 3.1 G, so the 5.7 G is the outlier: no choice of
    what to include makes it (pooler and classifier < 0.001 G, the MLM head 4.07 G; query,
    key and value all from the 512-wide stream give 5.59 G; the element-wise work the
    convention skips is ~0.04 G). The paper gives no breakdown: treat it as ~5% high.
    """
    tokens = batch * seq_len
    e, h, t, inner = config.embedding_size, config.hidden_size, config.true_hidden_size, config.intermediate_size
    if config.trigram_input or e != h:  # MobileBertEmbeddings.project
        count.linear("embeddings", tokens, e * (3 if config.trigram_input else 1), h)
    value_in = t if config.use_bottleneck_attention else h
    for queries in blocks.query_counts(config.num_hidden_layers, seq_len, first_token_only):
        rows = batch * queries  # the query side: everything after the attention too
        if config.use_bottleneck:  # bottleneck.input: every token when keys and values read it
            count.linear("bottlenecks", tokens if config.use_bottleneck_attention else rows, h, t)
            if config.key_query_shared_bottleneck and not config.use_bottleneck_attention:
                count.linear("bottlenecks", tokens, h, t)  # bottleneck.attention (query/key input)
        count.linear("attention_projections", rows, t, t)  # query
        count.linear("attention_projections", tokens, t, t)  # key
        count.linear("attention_projections", tokens, value_in, t)  # value
        count.attention(batch, seq_len, t, queries)
        count.linear("attention_projections", rows, t, t)  # attention.output.dense
        for _ in range(config.num_feedforward_networks):  # ffn[*] then intermediate/output
            count.linear("feed_forward", rows, t, inner)
            count.linear("feed_forward", rows, inner, t)
        if config.use_bottleneck:
            count.linear("bottlenecks", rows, t, h)  # output.bottleneck


ARCHITECTURE = Architecture(
    backbone=MobileBertModel,
    paper="MobileBERT, arXiv 2004.02984",
    paper_params_millions=(24.6, 25.3),
    tokenizer_class=MobileBertTokenizerFast,
    count_encoder_flops=count_flops,
    ffn_outputs=("encoder.layer.*.output.dense", "encoder.layer.*.ffn.*.output.dense"),
    paper_gflops={"mobilebert_paper": 5.7, "squeezebert_paper": 5.36},
    fake=dict(
        vocab_size=1000, hidden_size=64, embedding_size=32, intra_bottleneck_size=32,
        intermediate_size=48, num_attention_heads=4, num_hidden_layers=2,
        num_feedforward_networks=2, max_position_embeddings=128,
    ),
)
