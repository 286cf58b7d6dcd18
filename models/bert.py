"""BERT-base (arXiv 1810.04805): the baseline every compact-BERT paper measures against.

Its config is the base of MobileBERT's and SqueezeBERT's (transformers' field names and
defaults), its encoder loop serves MobileBERT too, and its FLOP count, with other group
sizes, serves SqueezeBERT and DistilBERT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pocketbert.models import blocks
from pocketbert.models.architecture import Architecture, FlopCounter
from pocketbert.models.config_base import ModelConfig, check_divisible
from pocketbert.models.modeling import (
    Backbone,
    ForMaskedLM,
    ForQuestionAnswering,
    ForSentenceEmbedding,
    ForSequenceClassification,
    attention_inputs,
)
from pocketbert.models.outputs import ModelOutput
from pocketbert.models.wordpiece import BertTokenizerFast


@dataclass
class BertConfig(ModelConfig):
    """BERT-base (110M params), the baseline every compact-BERT paper compares to."""

    model_type: ClassVar[str] = "bert"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    classifier_dropout: float | None = None

    def validate(self) -> None:
        super().validate()
        check_divisible(self, "hidden_size", "num_attention_heads")


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        width = config.hidden_size
        self.self = blocks.SelfAttention(width, width, width, config.num_attention_heads)
        self.output = blocks.DenseNorm(width, width, "layer_norm", config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor, first_token_only: bool = False) -> torch.Tensor:
        queries = blocks.query_rows(hidden, first_token_only)  # [B, S or 1, H]
        return self.output(self.self(queries, hidden, hidden, bias), queries)


class BertLayer(nn.Module):
    """Post-norm transformer layer: attention, then a GELU feed-forward, each with residual."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = blocks.DenseActivation(
            config.hidden_size, config.intermediate_size, config.hidden_act
        )
        self.output = blocks.DenseNorm(
            config.intermediate_size, config.hidden_size, "layer_norm", config.layer_norm_eps
        )

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor, first_token_only: bool = False) -> torch.Tensor:
        attended = self.attention(hidden, bias, first_token_only)  # [B, S or 1, H]
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    """The layers under transformers' names (``encoder.layer.N``). Called as a module, so
    exported graphs scope the layers under it (LiteRT tensor names, which --exclude and the
    block scan match)."""

    def __init__(self, config: BertConfig, layer_class: type[nn.Module]):
        super().__init__()
        self.layer = nn.ModuleList(layer_class(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor, first_token_only: bool = False) -> torch.Tensor:
        for layer, only_first in blocks.encoder_steps(self.layer, first_token_only):
            hidden = layer(hidden, bias, only_first)  # [B, S, H]; [B, 1, H] after a first-token-only layer
        return hidden


class BertModel(Backbone):
    config_class = BertConfig
    base_model_prefix = "bert"

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = blocks.Embeddings(
            config.vocab_size,
            config.hidden_size,
            config.hidden_size,
            config.max_position_embeddings,
            config.type_vocab_size,
            "layer_norm",
            config.layer_norm_eps,
            config.pad_token_id,
        )
        self.encoder = BertEncoder(config, BertLayer)
        self.pooler = blocks.Pooler(config.hidden_size) if add_pooling_layer else None

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, first_token_only: bool = False) -> ModelOutput:
        hidden = self.embeddings(input_ids, token_type_ids)  # [B, S, H]
        bias = attention_inputs(input_ids, attention_mask, hidden.dtype)  # [B, 1, 1, S]
        return self.pool(self.encoder(hidden, bias, first_token_only))


class BertForMaskedLM(ForMaskedLM):
    backbone_class = BertModel


class BertForSequenceClassification(ForSequenceClassification):
    backbone_class = BertModel


class BertForQuestionAnswering(ForQuestionAnswering):
    backbone_class = BertModel


class BertForSentenceEmbedding(ForSentenceEmbedding):
    backbone_class = BertModel


def count_flops(
    count: FlopCounter,
    config: ModelConfig,
    batch: int,
    seq_len: int,
    first_token_only: bool = False,
    attention_groups: tuple[int, int, int, int] = (1, 1, 1, 1),
    feed_forward_groups: tuple[int, int] = (1, 1),
) -> None:
    """BERT's layers: query, key, value and the projection after attention (H -> H), the
    scores, then the feed-forward H -> intermediate -> H. DistilBERT's layer is the same
    (q_lin, k_lin, v_lin, out_lin, lin1, lin2); SqueezeBERT's too, as 1x1 convolutions with
    ``groups`` (its attention_groups: q, k, v, post_attention). Embedding lookups are free.
    With ``first_token_only`` the last layer runs everything but key and value on one
    token per sequence."""
    tokens = batch * seq_len
    h, inner = config.hidden_size, config.intermediate_size
    q_groups, k_groups, v_groups, post_groups = attention_groups
    for queries in blocks.query_counts(config.num_hidden_layers, seq_len, first_token_only):
        rows = batch * queries  # what the query, the projection after attention and the FFN see
        count.linear("attention_projections", rows, h, h, q_groups)
        count.linear("attention_projections", tokens, h, h, k_groups)
        count.linear("attention_projections", tokens, h, h, v_groups)
        count.linear("attention_projections", rows, h, h, post_groups)
        count.attention(batch, seq_len, h, queries)
        count.linear("feed_forward", rows, h, inner, feed_forward_groups[0])
        count.linear("feed_forward", rows, inner, h, feed_forward_groups[1])


ARCHITECTURE = Architecture(
    backbone=BertModel,
    paper="BERT, arXiv 1810.04805",
    paper_params_millions=(109.0, 110.5),
    tokenizer_class=BertTokenizerFast,
    count_encoder_flops=count_flops,
    ffn_outputs=("encoder.layer.*.output.dense",),
    # 22.35 G counted; the MobileBERT and SqueezeBERT papers both quote 22.5 G (-0.7%)
    paper_gflops={"mobilebert_paper": 22.5, "squeezebert_paper": 22.5},
    fake=dict(
        vocab_size=1000, hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=128,
    ),
)
