"""SqueezeBERT (arXiv 2006.11316): BERT with its dense layers as grouped 1x1 convolutions.

The encoder runs channels-first ([B, C, W]: batch, channels, sequence), as the paper
does, so every projection is a Conv1d with ``groups`` (TFLite lowers it to CONV_2D), and
LayerNorm normalises over channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pocketbert.errors import ConfigError
from pocketbert.models import bert, blocks
from pocketbert.models.architecture import Architecture, FlopCounter
from pocketbert.models.bert import BertConfig
from pocketbert.models.modeling import (
    Backbone,
    ForMaskedLM,
    ForMultipleChoice,
    ForQuestionAnswering,
    ForSentenceEmbedding,
    ForSequenceClassification,
    ForTokenClassification,
    attention_inputs,
)
from pocketbert.models.outputs import ModelOutput
from pocketbert.models.wordpiece import BertTokenizerFast


@dataclass
class SqueezeBertConfig(BertConfig):
    """SqueezeBERT (arXiv 2006.11316): grouped 1x1 convolutions instead of dense layers."""

    model_type: ClassVar[str] = "squeezebert"

    embedding_size: int = 768
    q_groups: int = 4
    k_groups: int = 4
    v_groups: int = 4
    post_attention_groups: int = 1
    intermediate_groups: int = 4
    output_groups: int = 4

    def validate(self) -> None:
        super().validate()
        if self.embedding_size != self.hidden_size:
            raise ConfigError(
                f"squeezebert needs embedding_size == hidden_size, got {self.embedding_size} "
                f"and {self.hidden_size}"
            )
        widths = {
            "q_groups": (self.hidden_size, self.hidden_size),
            "k_groups": (self.hidden_size, self.hidden_size),
            "v_groups": (self.hidden_size, self.hidden_size),
            "post_attention_groups": (self.hidden_size, self.hidden_size),
            "intermediate_groups": (self.hidden_size, self.intermediate_size),
            "output_groups": (self.intermediate_size, self.hidden_size),
        }
        for name, (cin, cout) in widths.items():
            groups = getattr(self, name)
            if groups < 1 or cin % groups or cout % groups:
                raise ConfigError(f"{name}={groups} must divide {cin} input and {cout} output channels")


# transformers' SqueezeBertLayerNorm ignores config.layer_norm_eps and always uses this.
ENCODER_NORM_EPS = 1e-12


def conv1x1(cin: int, cout: int, groups: int) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, kernel_size=1, groups=groups)


class SqueezeBertLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a [B, C, W] tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ConvDropoutLayerNorm(nn.Module):
    """``layernorm(conv1d(x) + residual)`` on [B, C, W]."""

    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.conv1d = conv1x1(cin, cout, groups)
        self.layernorm = SqueezeBertLayerNorm(cout, eps=ENCODER_NORM_EPS)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.layernorm(self.conv1d(x) + residual)


class ConvActivation(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int, act: str):
        super().__init__()
        self.conv1d = conv1x1(cin, cout, groups)
        self.act = blocks.activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv1d(x))


class SqueezeBertSelfAttention(nn.Module):
    def __init__(self, config: SqueezeBertConfig):
        super().__init__()
        width = config.hidden_size
        self.head_size = width // config.num_attention_heads
        self.query = conv1x1(width, width, config.q_groups)
        self.key = conv1x1(width, width, config.k_groups)
        self.value = conv1x1(width, width, config.v_groups)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """[B, h*d, W] -> [B, h, d, W]."""
        return x.view(x.shape[0], -1, self.head_size, x.shape[-1])

    def forward(self, queries: torch.Tensor, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Queries [B, C, Q] (Q = W, or 1 for the first token only), keys and values from
        x [B, C, W] -> context [B, C, Q]."""
        query = self.split(self.query(queries)).transpose(2, 3)  # [B, h, Q, d]
        key_t = self.split(self.key(x))  # [B, h, d, W]: already transposed for q @ k
        value = self.split(self.value(x)).transpose(2, 3)  # [B, h, W, d]
        context = blocks.attend(query, key_t, value, bias, self.head_size)  # [B, h, Q, d]
        return context.transpose(2, 3).flatten(1, 2)  # [B, C, Q]


class SqueezeBertModule(nn.Module):
    """One encoder layer: attention, post-attention conv, expanding conv, output conv."""

    def __init__(self, config: SqueezeBertConfig):
        super().__init__()
        hidden, inner = config.hidden_size, config.intermediate_size
        self.attention = SqueezeBertSelfAttention(config)
        self.post_attention = ConvDropoutLayerNorm(hidden, hidden, config.post_attention_groups)
        self.intermediate = ConvActivation(hidden, inner, config.intermediate_groups, config.hidden_act)
        self.output = ConvDropoutLayerNorm(inner, hidden, config.output_groups)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, first_token_only: bool = False) -> torch.Tensor:
        queries = x[:, :, :1] if first_token_only else x  # [B, C, W or 1]: channels first
        attended = self.post_attention(self.attention(queries, x, bias), queries)  # [B, C, W or 1]
        return self.output(self.intermediate(attended), attended)


class SqueezeBertEncoder(nn.Module):
    def __init__(self, config: SqueezeBertConfig):
        super().__init__()
        self.layers = nn.ModuleList(SqueezeBertModule(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor, first_token_only: bool = False) -> torch.Tensor:
        x = hidden.transpose(1, 2)  # [B, S, C] -> [B, C, S]
        for layer, only_first in blocks.encoder_steps(self.layers, first_token_only):
            x = layer(x, bias, only_first)  # [B, C, S]; [B, C, 1] after a first-token-only layer
        return x.transpose(1, 2)  # [B, S or 1, C]


class SqueezeBertModel(Backbone):
    config_class = SqueezeBertConfig
    base_model_prefix = "transformer"

    def __init__(self, config: SqueezeBertConfig, add_pooling_layer: bool = True):
        # transformers' SqueezeBertModel always has a pooler (its heads carry its weights
        # even when unused), so add_pooling_layer is accepted and ignored: same keys.
        super().__init__(config)
        self.embeddings = blocks.Embeddings(
            config.vocab_size,
            config.embedding_size,
            config.embedding_size,
            config.max_position_embeddings,
            config.type_vocab_size,
            "layer_norm",
            config.layer_norm_eps,
            config.pad_token_id,
        )
        self.encoder = SqueezeBertEncoder(config)
        self.pooler = blocks.Pooler(config.hidden_size)

    @classmethod
    def runs_pooler_dense(cls, config: SqueezeBertConfig, add_pooling_layer: bool) -> bool:
        return True  # built whatever the task (as transformers does), and always run

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, first_token_only: bool = False) -> ModelOutput:
        hidden = self.embeddings(input_ids, token_type_ids)  # [B, S, C]
        bias = attention_inputs(input_ids, attention_mask, hidden.dtype)  # [B, 1, 1, S]
        return self.pool(self.encoder(hidden, bias, first_token_only))


class SqueezeBertForMaskedLM(ForMaskedLM):
    backbone_class = SqueezeBertModel


class SqueezeBertForSequenceClassification(ForSequenceClassification):
    backbone_class = SqueezeBertModel


class SqueezeBertForMultipleChoice(ForMultipleChoice):
    backbone_class = SqueezeBertModel


class SqueezeBertForTokenClassification(ForTokenClassification):
    backbone_class = SqueezeBertModel


class SqueezeBertForQuestionAnswering(ForQuestionAnswering):
    backbone_class = SqueezeBertModel


class SqueezeBertForSentenceEmbedding(ForSentenceEmbedding):
    backbone_class = SqueezeBertModel


class SqueezeBertTokenizerFast(BertTokenizerFast):
    """BERT's uncased WordPiece, under the name transformers gives SqueezeBERT's tokenizer."""


SqueezeBertTokenizer = SqueezeBertTokenizerFast  # the docs' "slow" name: the same implementation


def count_flops(
    count: FlopCounter, config: SqueezeBertConfig, batch: int, seq_len: int, first_token_only: bool = False
) -> None:
    """BERT's count with each 1x1 convolution divided by its groups: 7.40 G at paper size
    against the paper's 7.42 G (-0.3%)."""
    attention_groups = (config.q_groups, config.k_groups, config.v_groups, config.post_attention_groups)
    feed_forward_groups = (config.intermediate_groups, config.output_groups)
    bert.count_flops(count, config, batch, seq_len, first_token_only, attention_groups, feed_forward_groups)


ARCHITECTURE = Architecture(
    backbone=SqueezeBertModel,
    paper="SqueezeBERT, arXiv 2006.11316",
    paper_params_millions=(50.6, 51.6),
    tokenizer_class=SqueezeBertTokenizerFast,
    count_encoder_flops=count_flops,
    ffn_outputs=("encoder.layers.*.output.conv1d",),
    paper_gflops={"squeezebert_paper": 7.42},
    fake=dict(
        vocab_size=1000, hidden_size=64, embedding_size=64, intermediate_size=128,
        num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=128,
    ),
)
