"""DistilBERT (arXiv 1910.01108): six BERT layers distilled from BERT-base, no token types,
no pooler; classifiers read the first token through their own ``pre_classifier``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pocketbert.models import bert, blocks
from pocketbert.models.architecture import Architecture
from pocketbert.models.config_base import ModelConfig, check_divisible
from pocketbert.models.modeling import (
    Backbone,
    ForMultipleChoice,
    ForQuestionAnswering,
    ForSentenceEmbedding,
    ForSequenceClassification,
    ForTokenClassification,
    TaskModel,
    attention_inputs,
)
from pocketbert.models.outputs import ModelOutput
from pocketbert.models.wordpiece import BertTokenizerFast


@dataclass
class DistilBertConfig(ModelConfig):
    """DistilBERT (arXiv 1910.01108): 6 BERT layers distilled from BERT-base, 66M params."""

    model_type: ClassVar[str] = "distilbert"
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "intermediate_size": "hidden_dim",
        "hidden_act": "activation",
    }

    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 3072
    activation: str = "gelu"

    def validate(self) -> None:
        super().validate()
        check_divisible(self, "dim", "n_heads")


NORM_EPS = 1e-12  # transformers hard-codes it for every DistilBERT norm


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.head_size = config.dim // config.n_heads
        self.q_lin = nn.Linear(config.dim, config.dim)
        self.k_lin = nn.Linear(config.dim, config.dim)
        self.v_lin = nn.Linear(config.dim, config.dim)
        self.out_lin = nn.Linear(config.dim, config.dim)

    def forward(self, queries: torch.Tensor, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        context = blocks.multi_head_attention(
            self.q_lin(queries), self.k_lin(x), self.v_lin(x), bias, self.head_size
        )  # [B, Q, dim]: Q = S, or 1 for the first token only
        return self.out_lin(context)


class FFN(nn.Module):
    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.lin1 = nn.Linear(config.dim, config.hidden_dim)
        self.lin2 = nn.Linear(config.hidden_dim, config.dim)
        self.activation = blocks.activation(config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.activation(self.lin1(x)))


class TransformerBlock(nn.Module):
    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.attention = MultiHeadSelfAttention(config)
        self.sa_layer_norm = nn.LayerNorm(config.dim, eps=NORM_EPS)
        self.ffn = FFN(config)
        self.output_layer_norm = nn.LayerNorm(config.dim, eps=NORM_EPS)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, first_token_only: bool = False) -> torch.Tensor:
        queries = blocks.query_rows(x, first_token_only)  # [B, S or 1, dim]
        x = self.sa_layer_norm(self.attention(queries, x, bias) + queries)
        return self.output_layer_norm(self.ffn(x) + x)


class Transformer(nn.Module):
    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.layer = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))

    def forward(self, x: torch.Tensor, bias: torch.Tensor, first_token_only: bool = False) -> torch.Tensor:
        for layer, only_first in blocks.encoder_steps(self.layer, first_token_only):
            x = layer(x, bias, only_first)  # [B, S, dim]; [B, 1, dim] after a first-token-only layer
        return x


class DistilBertModel(Backbone):
    config_class = DistilBertConfig
    base_model_prefix = "distilbert"
    uses_token_types = False

    def __init__(self, config: DistilBertConfig, add_pooling_layer: bool = True):
        # DistilBERT has no pooler in any head; add_pooling_layer is accepted for the shared API.
        super().__init__(config)
        self.embeddings = blocks.Embeddings(
            config.vocab_size,
            config.dim,
            config.dim,
            config.max_position_embeddings,
            0,
            "layer_norm",
            NORM_EPS,
            config.pad_token_id,
        )
        self.transformer = Transformer(config)

    @classmethod
    def runs_pooler_dense(cls, config: DistilBertConfig, add_pooling_layer: bool) -> bool:
        return False  # no pooler; its classifiers have their own pre_classifier

    def post_init_weights(self) -> None:
        if self.config.sinusoidal_pos_embds:
            table = self.embeddings.position_embeddings.weight
            with torch.no_grad():
                table.copy_(blocks.sinusoidal_table(*table.shape))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, first_token_only: bool = False) -> ModelOutput:
        self.check_token_types(token_type_ids)
        hidden = self.embeddings(input_ids)  # [B, S, dim]
        bias = attention_inputs(input_ids, attention_mask, hidden.dtype)  # [B, 1, 1, S]
        return self.pool(self.transformer(hidden, bias, first_token_only))


class DistilBertForMaskedLM(TaskModel):
    backbone_class = DistilBertModel
    task = "fill-mask"
    uses_pooler = False

    def __init__(self, config: DistilBertConfig):
        super().__init__(config)
        self.activation = blocks.activation(config.activation)
        self.vocab_transform = nn.Linear(config.dim, config.dim)
        self.vocab_layer_norm = nn.LayerNorm(config.dim, eps=NORM_EPS)
        self.vocab_projector = nn.Linear(config.dim, config.vocab_size)
        self.tie_word_embeddings(self.vocab_projector)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        hidden = self.encode(input_ids, attention_mask, token_type_ids).last_hidden_state
        hidden = self.vocab_layer_norm(self.activation(self.vocab_transform(hidden)))
        return ModelOutput(logits=self.vocab_projector(hidden))  # [B, S, vocab]


class FirstTokenSummary(ForSequenceClassification):
    """DistilBERT's classifiers: ReLU(pre_classifier(first token)) instead of a pooler."""

    summary_dense_layers = 1  # pre_classifier

    def __init__(self, config: DistilBertConfig):
        super().__init__(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)

    def summarize(self, out: ModelOutput) -> torch.Tensor:
        return torch.relu(self.pre_classifier(out.last_hidden_state[:, 0]))  # [B, dim]


class DistilBertForSequenceClassification(FirstTokenSummary):
    backbone_class = DistilBertModel


class DistilBertForMultipleChoice(ForMultipleChoice, FirstTokenSummary):
    backbone_class = DistilBertModel


class DistilBertForTokenClassification(ForTokenClassification):
    backbone_class = DistilBertModel


class DistilBertForQuestionAnswering(ForQuestionAnswering):
    backbone_class = DistilBertModel


class DistilBertForSentenceEmbedding(ForSentenceEmbedding):
    backbone_class = DistilBertModel


class DistilBertTokenizerFast(BertTokenizerFast):
    """DistilBERT has no segment embeddings: no token_type_ids in its inputs."""

    model_input_names = ("input_ids", "attention_mask")


DistilBertTokenizer = DistilBertTokenizerFast  # the docs' "slow" name: the same implementation


ARCHITECTURE = Architecture(
    backbone=DistilBertModel,
    paper="DistilBERT, arXiv 1910.01108",
    paper_params_millions=(66.0, 67.0),
    tokenizer_class=DistilBertTokenizerFast,
    # 6 of BERT-base's layers under other names: 11.17 G, half of BERT-base. The paper
    # quotes no FLOPs, only "60% faster".
    count_encoder_flops=bert.count_flops,
    ffn_outputs=("transformer.layer.*.ffn.lin2",),
    fake=dict(vocab_size=1000, dim=64, hidden_dim=128, n_heads=4, n_layers=2, max_position_embeddings=128),
)
