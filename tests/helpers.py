"""Shared test helpers: transformers as the parity oracle, random right-padded inputs."""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys
import warnings

import numpy as np
import torch

from pocketbert.models.modeling import PreTrainedModel


def hf():
    """transformers, quiet (imported lazily: only tests use it)."""
    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    return transformers


def hf_config(config):
    """The transformers config equal to one of ours."""
    data = config.to_dict()
    return hf().AutoConfig.for_model(data.pop("model_type"), **data)


def hf_class(cls: type[PreTrainedModel]):
    """transformers' class of the same name (names are identical by design)."""
    return getattr(hf(), cls.__name__)


def random_inputs(model: PreTrainedModel, batch: int = 3, seq: int = 11, choices: int = 0, seed: int = 0):
    """Right-padded batch with mixed lengths (full, shorter, 2 tokens), like a tokenizer gives."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    lengths = [seq, max(2, seq - 4), 2][:batch] + [seq] * max(0, batch - 3)
    shape = (batch, choices, seq) if choices else (batch, seq)
    ids = torch.randint(1, vocab, shape, generator=g)
    mask = torch.zeros(shape, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, ..., :n] = 1
    ids = ids * mask  # pad id 0 on the right
    inputs = {"input_ids": ids, "attention_mask": mask}
    if model.uses_token_types:
        types = torch.zeros(shape, dtype=torch.long)
        types[..., seq // 2 :] = 1  # second segment
        inputs["token_type_ids"] = types * mask
    return inputs


def inputs_for(model: PreTrainedModel, **kwargs):
    return random_inputs(model, choices=3 if model.task == "multiple-choice" else 0, **kwargs)


def perturb(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Add noise to every parameter: biases and norms stop being 0 and 1, so a parity test
    notices a bias or norm that is wired wrong."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def fake_model(arch: str, task: str, seed: int = 0, **changes):
    """A tiny (fake-config) model of the registry with perturbed random weights."""
    from pocketbert.models import registry

    spec = registry.get_architecture(arch)
    return perturb(spec.model_class(task)(spec.fake_config(**changes)).init_weights(seed), seed=seed + 1)


def fake_checkpoint(path, arch: str, task: str, seed: int = 0, **changes):
    """``fake_model`` saved with a tokenizer of the project vocabulary (what calibration text
    goes through); the directory."""
    from pocketbert.models import registry
    from pocketbert.models.vocab import build_vocab

    model = fake_model(arch, task, seed=seed, **changes)
    model.save_pretrained(path)
    vocab = {token: i for i, token in enumerate(build_vocab(model.config.vocab_size))}
    registry.get_architecture(arch).tokenizer_class(vocab).save_pretrained(path)
    return path


def max_abs_diff(ours: dict, theirs, names) -> dict[str, float]:
    return {
        name: float((ours[name].detach() - getattr(theirs, name).detach()).abs().max()) for name in names
    }


@contextlib.contextmanager
def no_checkpoint_warnings():
    """Loading must not fall back on fresh weights or drop any."""
    from pocketbert.models.checkpoint import CheckpointWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        yield


def quiet():
    return contextlib.redirect_stderr(io.StringIO())


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def pocketbert(*args, env=None, cwd=None):
    """The CLI in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pocketbert.cli", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd,
    )


def assert_one_line_error(done, *fragments):
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("pocketbert: error:")]
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def quantized_once(floats, tmp_path_factory, **options):
    """``make(recipe) -> (out_dir, manifest)``: the recipe applied to ``floats / <its format>``
    once per module, however many tests read the file (a real checkpoint's quantization is
    10-40 s)."""
    from pocketbert.quantize import get_recipe, quantize_model

    made = {}

    def make(recipe: str):
        if recipe not in made:
            out = tmp_path_factory.mktemp(recipe) / "q"
            made[recipe] = (out, quantize_model(floats / get_recipe(recipe).format, recipe, out, **options))
        return made[recipe]

    return make
