"""BERT-base (arXiv 1810.04805): the baseline every compact-BERT paper measures against."""

from __future__ import annotations

import torch
from torch import nn

from pocketbert.models import blocks
from pocketbert.models.configs import BertConfig
from pocketbert.models.modeling import (
    Backbone,
    ForMaskedLM,
    ForQuestionAnswering,
    ForSequenceClassification,
    attention_inputs,
)
from pocketbert.models.outputs import ModelOutput


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        width = config.hidden_size
        self.self = blocks.SelfAttention(width, width, width, config.num_attention_heads)
        self.output = blocks.DenseNorm(width, width, "layer_norm", config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden, hidden, hidden, bias), hidden)


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

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden, bias)  # [B, S, H]
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig, layer_class: type[nn.Module]):
        super().__init__()
        self.layer = nn.ModuleList(layer_class(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            hidden = layer(hidden, bias)
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

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        hidden = self.embeddings(input_ids, token_type_ids)  # [B, S, H]
        bias = attention_inputs(input_ids, attention_mask, hidden.dtype)  # [B, 1, 1, S]
        return self.pool(self.encoder(hidden, bias))


class BertForMaskedLM(ForMaskedLM):
    backbone_class = BertModel


class BertForSequenceClassification(ForSequenceClassification):
    backbone_class = BertModel


class BertForQuestionAnswering(ForQuestionAnswering):
    backbone_class = BertModel


TASK_CLASSES = {
    "feature-extraction": BertModel,
    "fill-mask": BertForMaskedLM,
    "text-classification": BertForSequenceClassification,
    "question-answering": BertForQuestionAnswering,
}
