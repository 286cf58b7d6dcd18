"""Model outputs: a dict of named tensors with attribute access, like transformers' ModelOutput.

Field names are transformers' (``last_hidden_state``, ``logits``, ``start_logits`` ...), and
are what exporters name graph outputs. Registered as a pytree node so ``torch.export``
flattens it (keys in order) like a dict.
"""

from __future__ import annotations

import torch
import torch.utils._pytree as pytree


class ModelOutput(dict):
    """``out.logits`` and ``out["logits"]`` both work; iteration order is the field order."""

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"output has no field {name!r} (fields: {', '.join(self)})") from None

    def to_tuple(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.values())


def _flatten(out: ModelOutput):
    return list(out.values()), list(out.keys())


def _unflatten(values, keys) -> ModelOutput:
    return ModelOutput(zip(keys, values))


pytree.register_pytree_node(
    ModelOutput,
    _flatten,
    _unflatten,
    serialized_type_name="pocketbert.models.outputs.ModelOutput",
    flatten_with_keys_fn=lambda out: ([(pytree.MappingKey(k), v) for k, v in out.items()], list(out.keys())),
)
