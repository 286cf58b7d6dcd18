"""MobileBERT (arXiv 2004.02984): a 24-layer BERT made thin by bottlenecks.

Each layer squeezes the 512-wide stream to 128 (``bottleneck``), attends and runs four
stacked feed-forwards at 128, then expands back (``output.bottleneck``). ``no_norm``
replaces LayerNorm by an element-wise affine map, and the word table is 128 wide with a
trigram convolution (concat of left/self/right neighbours) lifting it to 512.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pocketbert.models import blocks
from pocketbert.models.bert import BertEncoder
from pocketbert.models.configs import MobileBertConfig
from pocketbert.models.modeling import (
    Backbone,
    ForMaskedLM,
    ForMultipleChoice,
    ForNextSentencePrediction,
    ForPreTraining,
    ForQuestionAnswering,
    ForSequenceClassification,
    ForTokenClassification,
    attention_inputs,
)
from pocketbert.models.outputs import ModelOutput

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

    def attention_inputs(self, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """[B, S, H] -> (query/key input, value input, residual input) of the attention."""
        if not hasattr(self, "bottleneck"):
            return hidden, hidden, hidden
        squeezed = self.bottleneck.input(hidden)  # [B, S, true_hidden]
        if self.use_bottleneck_attention:
            return squeezed, squeezed, squeezed
        if hasattr(self.bottleneck, "attention"):
            return self.bottleneck.attention(hidden), hidden, squeezed
        return hidden, hidden, squeezed

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        query_key, value, layer_input = self.attention_inputs(hidden)
        context = self.attention.self(query_key, query_key, value, bias)  # [B, S, true_hidden]
        x = self.attention.output(context, layer_input)
        for ffn in getattr(self, "ffn", ()):
            x = ffn(x)
        return self.output(self.intermediate(x), x, hidden)  # [B, S, H]


class MobileBertLMPredictionHead(blocks.LMPredictionHead):
    """MLM head whose decoder is [embedding_size | extra ``dense`` rows] wide, so the tied
    128-wide word table can score 512-wide hidden states."""

    # forward reads these Linears' weights directly: module-swapping quantizers must skip them
    float_only_children = ("decoder", "dense")

    def __init__(self, config: MobileBertConfig):
        super().__init__(
            config.hidden_size, config.vocab_size, config.hidden_act, config.layer_norm_eps,
            word_size=config.embedding_size,
        )
        self.dense = nn.Linear(config.vocab_size, config.hidden_size - config.embedding_size, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.transform(hidden)  # [B, S, H]
        weight = torch.cat([self.decoder.weight.t(), self.dense.weight], dim=0)  # [H, vocab]
        return hidden.matmul(weight) + self.decoder.bias  # [B, S, vocab]


class MobileBertModel(Backbone):
    config_class = MobileBertConfig
    base_model_prefix = "mobilebert"

    def __init__(self, config: MobileBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = MobileBertEmbeddings(config)
        self.encoder = BertEncoder(config, MobileBertLayer)
        self.pooler = blocks.Pooler(config.hidden_size, config.classifier_activation) if add_pooling_layer else None

    @staticmethod
    def build_lm_head(config: MobileBertConfig) -> nn.Module:
        return MobileBertLMPredictionHead(config)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        hidden = self.embeddings(input_ids, token_type_ids)  # [B, S, H]
        bias = attention_inputs(input_ids, attention_mask, hidden.dtype)  # [B, 1, 1, S]
        return self.pool(self.encoder(hidden, bias))


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


TASK_CLASSES = {
    "feature-extraction": MobileBertModel,
    "pretraining": MobileBertForPreTraining,
    "fill-mask": MobileBertForMaskedLM,
    "next-sentence-prediction": MobileBertForNextSentencePrediction,
    "text-classification": MobileBertForSequenceClassification,
    "multiple-choice": MobileBertForMultipleChoice,
    "token-classification": MobileBertForTokenClassification,
    "question-answering": MobileBertForQuestionAnswering,
}
