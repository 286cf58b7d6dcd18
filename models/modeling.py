"""The model base class and the task heads every architecture shares.

An architecture file defines its backbone (``MobileBertModel`` ...) and then one tiny
subclass per task, e.g. ``class MobileBertForQuestionAnswering(ForQuestionAnswering):
backbone_class = MobileBertModel``. The head, its state-dict keys and its outputs come from
here, so four architectures do not hold four copies of the same classifier.

Task names are the pipeline names users know from transformers and Optimum
("fill-mask", "text-classification" ...): the CLI, the exporters and the registry use them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from pocketbert.errors import ConfigError
from pocketbert.models import blocks, hub, weights
from pocketbert.models.config_base import CONFIG_NAME, ModelConfig, parse_config, read_config_dict
from pocketbert.models.outputs import ModelOutput
from pocketbert.models.sentence_embedding import SentenceEmbeddingSettings, SentencePooling, read_settings, settings_files

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class _InitSkipped(TorchFunctionMode):
    """Makes ``torch.nn.init`` a no-op while modules are built on the meta device, where
    there are no values to initialise: a meta ``normal_`` runs through torch's reference
    ops, whose first call imports ``torch._dynamo`` (~5 s of every ``info``/``run``)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]  # every init takes the tensor first
        return func(*args, **(kwargs or {}))


class PreTrainedModel(nn.Module):
    """A module built from a config, loadable from and savable to HF checkpoint dirs."""

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    base_model_prefix: ClassVar[str] = ""
    task: ClassVar[str] = "feature-extraction"
    # DistilBERT has no token types: its graphs take two inputs, not three.
    uses_token_types: ClassVar[bool] = True
    # whether the backbone is built with its pooler (a bare backbone is; QA, MLM heads are not)
    uses_pooler: ClassVar[bool] = True
    # the class transformers has under the same name (the parity oracle); False for tasks
    # pocketbert adds (sentence embeddings, whose oracle is sentence-transformers)
    in_transformers: ClassVar[bool] = True
    # checkpoint weights (task space, after the backbone prefix) this class leaves out on
    # purpose: dropped without the "another head" warning
    unused_on_purpose: ClassVar[tuple[str, ...]] = ()
    # whether the model's head reads the encoder's first token alone (pooler, [CLS] classifiers):
    # then the last layer computes that row only; the FLOP counts read it too
    reads_first_token_only: ClassVar[bool] = False

    # weights of this class the checkpoint did not have (freshly initialised at load): a head
    # or pooler nobody trained; the manifest records them and ``run`` / ``export`` say so
    untrained_weights: list[str] = []

    def __init__(self, config: ModelConfig):
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__} (model_type {config.model_type!r})"
            )
        super().__init__()
        self.config = config

    # ---- what goes in and out (exporters read these) ---------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        return INPUT_NAMES if self.uses_token_types else INPUT_NAMES[:2]

    @property
    def output_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def check_token_types(self, token_type_ids: torch.Tensor | None) -> None:
        if token_type_ids is not None and not self.uses_token_types:
            raise ValueError(f"{type(self).__name__} takes no token_type_ids")

    # ---- weights -------------------------------------------------------------------------
    def tied_aliases(self) -> dict[str, str]:
        """State-dict keys that are the same Parameter as an earlier key: {alias: source}.

        transformers ties the MLM decoder to the word table (and its bias to
        ``predictions.bias``) and does not save the aliases; neither do we.
        """
        first_name: dict[int, str] = {}
        aliases = {}
        for name, param in self.named_parameters(remove_duplicate=False):
            source = first_name.setdefault(id(param), name)
            if source != name:
                aliases[name] = source
        return aliases

    def init_weights(self, seed: int | None = None) -> "PreTrainedModel":
        """Random weights as transformers initialises them; deterministic for a given seed."""
        fork = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with fork:
            if seed is not None:
                torch.manual_seed(seed)
            blocks.init_weights(self, self.config.initializer_range)
            self.post_init_weights()
        return self

    def post_init_weights(self) -> None:
        """Architecture-specific initialisation after the generic one (DistilBERT's sinusoids)."""

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # shared (tied) parameters count once

    # ---- checkpoints ---------------------------------------------------------------------
    @property
    def task_space_prefix(self) -> str:
        """What turns this model's state-dict keys into a task model's (``mobilebert.`` for a
        bare backbone, nothing for a task model): checkpoints are compared in that space."""
        raise NotImplementedError

    @classmethod
    def architecture_classes(cls) -> list[type["PreTrainedModel"]]:
        """The backbone and every task class of this architecture: the keys any of them
        has are the keys a checkpoint of this architecture may hold."""
        raise NotImplementedError

    @classmethod
    def parameter_count(cls, config: ModelConfig) -> int:
        """How many parameters ``cls(config)`` would allocate, counted on the meta device
        at one and two layers (no memory, whatever the sizes) and extrapolated."""
        with torch.device("meta"), _InitSkipped():
            one, two = (cls(config.replace(num_hidden_layers=n)) for n in (1, 2))
        per_layer = two.num_parameters() - one.num_parameters()
        return one.num_parameters() + (config.num_hidden_layers - 1) * per_layer

    @classmethod
    def check_fits_in_memory(cls, config: ModelConfig, source: str = "the config") -> None:
        """Refuse sizes this machine cannot hold before allocating them (a vocabulary of
        1e12 or 100000 layers would allocate until the machine runs out)."""
        needed = cls.parameter_count(config) * 4  # float32
        available = _available_memory()
        # loading holds the model and the checkpoint's tensors at once: twice the weights
        if available is not None and 2 * needed > available:
            raise ConfigError(
                f"{source}: {cls.__name__} would need {needed / 1e9:,.1f} GB for its float32 parameters "
                f"(vocab_size={config.vocab_size}, {config.num_hidden_layers} layers); "
                f"{available / 1e9:,.1f} GB of memory is available"
            )

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **config_changes: Any) -> "PreTrainedModel":
        """Load a checkpoint directory or hub id into this class (see ``weights`` for what
        is strict and what is lenient); ``config_changes`` override config.json fields."""
        directory = hub.resolve(name_or_path)
        config = parse_config(cls.config_class, read_config_dict(directory), str(directory / CONFIG_NAME))
        if config_changes:
            config = config.replace(**config_changes)
        cls.check_fits_in_memory(config, str(directory / CONFIG_NAME))
        model = cls(config).init_weights()  # heads the checkpoint lacks start as transformers' would
        return weights.load_weights(model, directory)

    def save_pretrained(self, directory: str | Path) -> Path:
        return weights.save_pretrained(self, directory)

    def task_files(self) -> dict[str, str]:
        """Files besides config.json that a checkpoint or export of this class needs to
        mean the same thing, {relative path: text} (the pooling of sentence embeddings)."""
        return {}


class Backbone(PreTrainedModel):
    """The bare encoder of an architecture (``MobileBertModel`` ...)."""

    # The task classes built on this backbone, in the order they are defined: each
    # TaskModel subclass naming it as ``backbone_class`` adds itself.
    task_classes: ClassVar[dict[str, type["TaskModel"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.task_classes = {}  # one table per backbone, not one shared by all

    def __init__(self, config: ModelConfig, add_pooling_layer: bool = True):
        super().__init__(config)

    @classmethod
    def classes_by_task(cls) -> dict[str, type[PreTrainedModel]]:
        """{task: class} of this architecture, the bare backbone first (feature-extraction)."""
        return {cls.task: cls, **cls.task_classes}

    @classmethod
    def architecture_classes(cls) -> list[type[PreTrainedModel]]:
        return list(cls.classes_by_task().values())

    @property
    def task_space_prefix(self) -> str:
        return self.base_model_prefix + "."

    @classmethod
    def runs_pooler_dense(cls, config: ModelConfig, add_pooling_layer: bool) -> bool:
        """Whether a forward pass runs the pooler's H -> H dense (what FLOP counts charge).
        By default the pooler exists exactly when asked for; backbones that differ say so."""
        return add_pooling_layer

    @property
    def output_names(self) -> tuple[str, ...]:
        has_pooler = getattr(self, "pooler", None) is not None
        return ("last_hidden_state", "pooler_output") if has_pooler else ("last_hidden_state",)

    @staticmethod
    def build_lm_head(config: ModelConfig) -> nn.Module:
        """The ``cls.predictions`` module of this architecture's MLM head."""
        return blocks.LMPredictionHead(
            config.hidden_size, config.vocab_size, config.hidden_act, config.layer_norm_eps
        )

    def pool(self, hidden: torch.Tensor) -> ModelOutput:
        """[B, S, H] encoder output -> the backbone's outputs (pooled when it has a pooler)."""
        out = ModelOutput(last_hidden_state=hidden)
        if getattr(self, "pooler", None) is not None:
            out["pooler_output"] = self.pooler(hidden)  # [B, H]
        return out


class TaskModel(PreTrainedModel):
    """A backbone (under transformers' attribute name, e.g. ``mobilebert``) plus a head."""

    backbone_class: ClassVar[type[Backbone]]
    output_fields: ClassVar[tuple[str, ...]] = ("logits",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        backbone = cls.__dict__.get("backbone_class")
        if backbone is not None:
            cls.config_class = backbone.config_class
            cls.base_model_prefix = backbone.base_model_prefix
            cls.uses_token_types = backbone.uses_token_types
            if cls.task in backbone.task_classes:
                raise TypeError(
                    f"{backbone.__name__} already has a {cls.task!r} class "
                    f"({backbone.task_classes[cls.task].__name__}), {cls.__name__} cannot be another"
                )
            backbone.task_classes[cls.task] = cls

    @classmethod
    def architecture_classes(cls) -> list[type[PreTrainedModel]]:
        return cls.backbone_class.architecture_classes()

    @property
    def task_space_prefix(self) -> str:
        return ""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        backbone = self.backbone_class(config, add_pooling_layer=self.uses_pooler)
        setattr(self, self.base_model_prefix, backbone)

    @property
    def backbone(self) -> Backbone:
        return getattr(self, self.base_model_prefix)

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.output_fields

    def tie_word_embeddings(self, decoder: nn.Linear, bias: nn.Parameter | None = None) -> None:
        """Share the output projection with the word table (and its bias with the head's
        ``bias``), as transformers does when config.tie_word_embeddings is set."""
        if self.config.tie_word_embeddings:
            decoder.weight = self.backbone.embeddings.word_embeddings.weight
            if bias is not None:
                decoder.bias = bias

    def encode(self, input_ids, attention_mask, token_type_ids) -> ModelOutput:
        """The backbone's outputs; for heads that read the first token alone, its
        last_hidden_state is [B, 1, H] (see ``blocks.encoder_steps``)."""
        return self.backbone(input_ids, attention_mask, token_type_ids, first_token_only=self.reads_first_token_only)


class ForMaskedLM(TaskModel):
    task = "fill-mask"
    uses_pooler = False

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.cls = blocks.MLMHead(self.backbone_class.build_lm_head(config))
        self.tie_word_embeddings(self.cls.predictions.decoder, self.cls.predictions.bias)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        hidden = self.encode(input_ids, attention_mask, token_type_ids).last_hidden_state
        return ModelOutput(logits=self.cls(hidden))  # [B, S, vocab]


class ForPreTraining(TaskModel):
    task = "pretraining"
    output_fields = ("prediction_logits", "seq_relationship_logits")

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        lm_head = self.backbone_class.build_lm_head(config)
        self.cls = blocks.PreTrainingHeads(lm_head, config.hidden_size)
        self.tie_word_embeddings(lm_head.decoder, lm_head.bias)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        out = self.encode(input_ids, attention_mask, token_type_ids)
        return ModelOutput(
            prediction_logits=self.cls.predictions(out.last_hidden_state),  # [B, S, vocab]
            seq_relationship_logits=self.cls.seq_relationship(out.pooler_output),  # [B, 2]
        )


class ForNextSentencePrediction(TaskModel):
    task = "next-sentence-prediction"
    reads_first_token_only = True

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.cls = blocks.NSPHead(config.hidden_size)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        pooled = self.encode(input_ids, attention_mask, token_type_ids).pooler_output
        return ModelOutput(logits=self.cls(pooled))  # [B, 2]


class ForSequenceClassification(TaskModel):
    task = "text-classification"
    reads_first_token_only = True
    num_outputs_from_labels: ClassVar[bool] = True
    # H -> H Linear layers ``summarize`` runs before the classifier (FLOP counts read it)
    summary_dense_layers: ClassVar[int] = 0

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        width = config.num_labels if self.num_outputs_from_labels else 1
        self.classifier = nn.Linear(config.hidden_size, width)

    def summarize(self, out: ModelOutput) -> torch.Tensor:
        """Backbone outputs -> one vector per sequence [B, H]: the pooler's, by default. It
        may read the first token only (``reads_first_token_only``): a head reading more
        rows must set that False, or its last layer computes them not at all."""
        return out.pooler_output

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        out = self.encode(input_ids, attention_mask, token_type_ids)
        return ModelOutput(logits=self.classifier(self.summarize(out)))  # [B, num_labels]


class ForMultipleChoice(ForSequenceClassification):
    """Scores each of C candidate continuations: inputs [B, C, S] -> logits [B, C]."""

    task = "multiple-choice"
    num_outputs_from_labels = False

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        num_choices = input_ids.shape[1]
        flat = [None if t is None else t.flatten(0, 1) for t in (input_ids, attention_mask, token_type_ids)]
        scores = super().forward(*flat).logits  # [B*C, 1]
        return ModelOutput(logits=scores.view(-1, num_choices))


class ForTokenClassification(TaskModel):
    task = "token-classification"
    uses_pooler = False

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        hidden = self.encode(input_ids, attention_mask, token_type_ids).last_hidden_state
        return ModelOutput(logits=self.classifier(hidden))  # [B, S, num_labels]


class ForQuestionAnswering(TaskModel):
    task = "question-answering"
    uses_pooler = False
    output_fields = ("start_logits", "end_logits")

    def __init__(self, config: ModelConfig):
        if config.num_labels != 2:
            raise ConfigError(f"question answering needs 2 labels (start, end), config has {config.num_labels}")
        super().__init__(config)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        hidden = self.encode(input_ids, attention_mask, token_type_ids).last_hidden_state
        logits = self.qa_outputs(hidden)  # [B, S, 2]
        return ModelOutput(start_logits=logits[..., 0], end_logits=logits[..., 1])  # [B, S] each


class ForSentenceEmbedding(TaskModel):
    """The encoder plus sentence-transformers' pooling (and normalisation): one vector per
    sentence, [B, H * pooling modes], so the exported graph gives what an app searches with.
    The settings come from the checkpoint's modules.json (see ``sentence_embedding``)."""

    task = "sentence-embedding"
    uses_pooler = False
    in_transformers = False
    unused_on_purpose = ("pooler.",)  # sentence-transformers never runs BERT's pooler
    output_fields = ("sentence_embedding",)

    def __init__(self, config: ModelConfig, settings: SentenceEmbeddingSettings | None = None):
        super().__init__(config)
        self.pooling = SentencePooling(settings or SentenceEmbeddingSettings())

    @property
    def settings(self) -> SentenceEmbeddingSettings:
        return self.pooling.settings

    @property
    def embedding_dimension(self) -> int:
        return self.config.hidden_size * len(self.settings.pooling)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **config_changes: Any) -> "ForSentenceEmbedding":
        settings = read_settings(hub.resolve(name_or_path))  # a module we cannot export fails before the weights load
        model = super().from_pretrained(name_or_path, **config_changes)
        model.pooling = SentencePooling(settings)
        return model

    def task_files(self) -> dict[str, str]:
        return settings_files(self.settings, self.config.hidden_size)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> ModelOutput:
        hidden = self.encode(input_ids, attention_mask, token_type_ids).last_hidden_state  # [B, S, H]
        return ModelOutput(sentence_embedding=self.pooling(hidden, attention_mask))  # [B, H * modes]


def _available_memory() -> int | None:
    """Bytes of memory the kernel says can be allocated now (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def attention_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """The additive attention bias [B, 1, 1, S] every backbone starts from."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    return blocks.attention_bias(attention_mask, dtype)
