"""Files pocketbert did not export (Optimum's .onnx, litert-torch's .tflite, a published
.pte): which of their inputs is which, so bench and parity can feed them token ids.

Exporters name the same three inputs differently (``input_ids``, ``serving_default_input_ids:0``,
``args_0``, ``input_word_ids``, ``segment_ids``, ``input_mask``), and formats without names
(.pte) only have positions. A name that says what it is wins; the rest take the remaining
inputs in the order BERT-family graphs list them.
"""

from __future__ import annotations

import re

from pocketbert.contracts.runner import RunnerError

CANONICAL = ("input_ids", "attention_mask", "token_type_ids")  # the order BERT-family models take them
# ids of any real vocabulary (every one has more than 100 pieces) when the file's is unknown
SAFE_VOCABULARY = 100

_BY_NAME = (("attention_mask", re.compile(r"mask")), ("token_type_ids", re.compile(r"type|segment")),
            ("input_ids", re.compile(r"ids|word|token")))


def role_by_name(name: str) -> str | None:
    lowered = name.lower()
    return next((role for role, pattern in _BY_NAME if pattern.search(lowered)), None)


def input_roles(names: tuple[str, ...], file: str = "the file") -> dict[str, str]:
    """{the file's input name: the input it is (CANONICAL)}; canonical names map to themselves."""
    if len(names) > len(CANONICAL):
        raise RunnerError(f"{file} takes {len(names)} inputs ({', '.join(names)}); BERT-family graphs take "
                          f"at most {len(CANONICAL)} ({', '.join(CANONICAL)})")
    roles: dict[str, str] = {}
    for name in names:
        role = role_by_name(name)
        if role is not None and role not in roles.values():
            roles[name] = role
    remaining = [role for role in CANONICAL if role not in roles.values()]
    for name in names:
        if name not in roles:
            roles[name] = remaining.pop(0)
    return {name: roles[name] for name in names}


def positional_names(count: int, file: str = "the file") -> tuple[str, ...]:
    """Names for a file that keeps only positions (.pte, TorchScript lite)."""
    if count > len(CANONICAL):
        raise RunnerError(f"{file} takes {count} inputs; BERT-family graphs take at most {len(CANONICAL)}")
    return CANONICAL[:count]


def numbered_outputs(count: int) -> tuple[str, ...]:
    """Names for the outputs of a file that keeps none: output_0, output_1 ..."""
    return tuple(f"output_{i}" for i in range(count))


def outputs_named(values, names: tuple[str, ...]) -> dict:
    """Outputs by the names the manifest gave, else numbered (a foreign file)."""
    values = list(values)
    return dict(zip(names or numbered_outputs(len(values)), values))


class AsCanonical:
    """A foreign file's runner that takes and gives what ours do: inputs by their canonical
    names (``CANONICAL``), outputs by ``output_names`` (the reference's). The file's outputs
    are matched by name when it has every one, else by position when it has as many (Optimum
    keeps ``logits``; a file without names gives output_0 ...); an input the file takes but
    the model does not (token types of a DistilBERT) is fed zeros."""

    def __init__(self, runner, output_names: tuple[str, ...], file: str = "the file"):
        self.runner, self.output_names, self.file = runner, tuple(output_names), file
        self.roles = input_roles(runner.input_names, file)
        found = tuple(runner.output_names)
        if set(self.output_names) <= set(found):
            self.taken = self.output_names
        elif len(found) == len(self.output_names):
            self.taken = found
        else:
            raise RunnerError(f"{file} gives {len(found)} outputs ({', '.join(found)}); the model gives "
                              f"{len(self.output_names)} ({', '.join(self.output_names)}): not the same task")
        self.input_names = tuple(role for role in CANONICAL if role in self.roles.values())
        self.fixed_sequence_length = runner.fixed_sequence_length

    def __call__(self, inputs: dict) -> dict:
        import numpy as np

        ids = inputs["input_ids"]
        fed = {name: inputs[role] if role in inputs else np.zeros_like(ids) for name, role in self.roles.items()}
        got = self.runner(fed)
        return {ours: got[theirs] for ours, theirs in zip(self.output_names, self.taken)}
