"""What an exported graph takes and gives: names, axes, dtypes and example inputs.

Derived from the model (``input_names``, ``output_names``, task) so that no exporter keeps
its own list. Axes are named as users see them in Netron and in the manifest: ``batch``,
``sequence`` and, for multiple choice, ``choices``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pocketbert.errors import PocketbertError
from pocketbert.models.modeling import PreTrainedModel
from pocketbert.models.tasks import get_task

DEFAULT_SEQUENCE_LENGTH = 128  # the papers' length; every default in the CLI and the API is this one
MIN_SEQUENCE = 3  # [CLS] x [SEP]; torch.export also specialises MobileBERT's trigram at 2


class TupleOutputs(nn.Module):
    """The model with outputs as a tuple in ``output_names`` order (what graph exporters
    and TorchScript want) instead of a dict."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model
        self.output_names = tuple(model.output_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(**dict(zip(self.model.input_names, inputs)))
        return tuple(out[name] for name in self.output_names)


@dataclass(frozen=True)
class ExportSpec:
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_axes: tuple[str, ...]  # ("batch", "sequence") or ("batch", "choices", "sequence")
    output_axes: dict[str, tuple[str | int, ...]]
    batch: int
    sequence: int
    choices: int
    static: bool
    max_sequence: int
    # static lengths of one file (one signature each, weights shared); () = the one ``sequence``
    buckets: tuple[int, ...] = ()

    @classmethod
    def for_model(
        cls, model: PreTrainedModel, batch: int = 1, sequence: int = DEFAULT_SEQUENCE_LENGTH, static: bool = False,
        choices: int = 4, buckets: tuple[int, ...] = (),
    ) -> "ExportSpec":
        limit = model.config.max_position_embeddings
        if buckets:
            if not static or batch != 1:
                raise PocketbertError("--seq-lens: sequence buckets are static, batch 1")
            bad = [n for n in buckets if not MIN_SEQUENCE <= n <= limit]
            if bad:
                raise PocketbertError(f"--seq-lens must be between {MIN_SEQUENCE} and {limit} for this model, got {bad[0]}")
            buckets = tuple(sorted(set(buckets)))
            sequence = buckets[-1]
        if not MIN_SEQUENCE <= sequence <= limit:
            raise PocketbertError(f"--seq-len must be between {MIN_SEQUENCE} and {limit} for this model, got {sequence}")
        if batch < 1:
            raise PocketbertError(f"--batch must be >= 1, got {batch}")
        task = get_task(model.task)
        hidden = model.config.hidden_size
        vocab = model.config.vocab_size
        known = {
            "last_hidden_state": ("batch", "sequence", hidden),
            "pooler_output": ("batch", hidden),
            "prediction_logits": ("batch", "sequence", vocab),
            "seq_relationship_logits": ("batch", 2),
            "start_logits": ("batch", "sequence"),
            "end_logits": ("batch", "sequence"),
            "sentence_embedding": ("batch", getattr(model, "embedding_dimension", hidden)),
        }
        output_axes = {name: known.get(name) or task.logits_axes(model.config) for name in model.output_names}
        return cls(
            input_names=tuple(model.input_names),
            output_names=tuple(model.output_names),
            input_axes=task.input_axes,
            output_axes=output_axes,
            batch=batch,
            sequence=sequence,
            choices=choices,
            static=static,
            max_sequence=limit,
            buckets=buckets if len(buckets) > 1 else (),
        )

    def to_dict(self) -> dict:
        """The spec as the manifest records it (``Artifact.spec()`` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ExportSpec":
        tuples = {"input_names", "output_names", "input_axes", "buckets"}
        values = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        values["output_axes"] = {name: tuple(axes) for name, axes in data["output_axes"].items()}
        return cls(**values)

    def sizes(self) -> dict[str, int]:
        return {"batch": self.batch, "sequence": self.sequence, "choices": self.choices}

    def input_shape(self, sizes: dict[str, int] | None = None) -> tuple[int, ...]:
        sizes = sizes or self.sizes()
        return tuple(sizes[axis] for axis in self.input_axes)

    def manifest_inputs(self, dtype: str = "int64") -> list[dict]:
        # buckets: the length is one of them (the manifest's "spec" lists them)
        dims = [self.sizes()[a] if self.static and not (self.buckets and a == "sequence") else a
                for a in self.input_axes]
        return [{"name": name, "shape": dims, "dtype": dtype} for name in self.input_names]

    def manifest_outputs(self) -> list[dict]:
        sizes = self.sizes()
        out = []
        for name in self.output_names:
            dims = [sizes[d] if self.static and isinstance(d, str) and not (self.buckets and d == "sequence") else d
                    for d in self.output_axes[name]]
            out.append({"name": name, "shape": dims, "dtype": "float32"})
        return out


def random_inputs(
    spec: ExportSpec, vocab_size: int, sizes: dict[str, int], seed: int, padded: bool = True
) -> dict[str, np.ndarray]:
    """Fresh token ids with right padding of mixed lengths (row b keeps a shorter prefix),
    segment ids 0 then 1 where the model has them."""
    rng = np.random.default_rng(seed)
    shape = spec.input_shape(sizes)
    sequence = shape[-1]
    ids = rng.integers(1, vocab_size, size=shape, dtype=np.int64)
    mask = np.ones(shape, dtype=np.int64)
    if padded:
        rows = ids.reshape(-1, sequence)
        flat_mask = mask.reshape(-1, sequence)
        for row in range(1, rows.shape[0]):
            keep = max(MIN_SEQUENCE, sequence - (row * 7) % sequence)
            flat_mask[row, keep:] = 0
            rows[row, keep:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in spec.input_names:
        types = np.zeros(shape, dtype=np.int64)
        types[..., sequence // 2 :] = 1
        inputs["token_type_ids"] = types * mask
    return {name: inputs[name] for name in spec.input_names}


def full_length_inputs(input_names, vocab_size: int, shape: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """Latency inputs of ``shape`` ([batch, sequence] or [batch, choices, sequence]): every
    position a real token (as the papers' seq-128 figures are), no padding, token types in
    two segments; ids above the special and rare pieces."""
    rng = np.random.default_rng(seed)
    sequence = shape[-1]
    segments = (np.arange(sequence) >= sequence // 2).astype(np.int64)
    inputs = {"input_ids": rng.integers(1000 if vocab_size > 2000 else 5, vocab_size, size=shape),
              "attention_mask": np.ones(shape), "token_type_ids": np.broadcast_to(segments, shape)}
    return {name: inputs[name].astype(np.int64) for name in input_names}


def example_args(spec: ExportSpec, vocab_size: int) -> tuple[torch.Tensor, ...]:
    """Positional example inputs for tracing. Dynamic exports trace at batch 2 and 3
    choices: torch.export would specialise a size of 1."""
    sizes = spec.sizes() if spec.static else {"batch": 2, "choices": 3, "sequence": max(spec.sequence, 16)}
    inputs = random_inputs(spec, vocab_size, sizes, seed=0)
    return tuple(torch.from_numpy(inputs[name]) for name in spec.input_names)


def validation_shapes(spec: ExportSpec) -> list[dict[str, int]]:
    """Static: the one shape. Dynamic: at least three, incl. batch 1, a padded batch, and
    lengths that are neither the example's nor a power of two."""
    if spec.buckets:  # each signature once, at its own length
        return [{**spec.sizes(), "sequence": n} for n in spec.buckets]
    if spec.static:
        return [spec.sizes()]
    longest = min(spec.max_sequence, max(spec.sequence, 64) + 13)
    return [
        {"batch": 1, "sequence": spec.sequence, "choices": 2},
        {"batch": 3, "sequence": 17, "choices": 3},
        {"batch": 2, "sequence": longest, "choices": 2},
    ]
