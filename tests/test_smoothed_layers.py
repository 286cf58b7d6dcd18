"""SmoothQuant and error feedback on a PyTorch model's layers (formats/smoothed_layers.py),
what ExecuTorch's dynamic recipe gives XNNPACK: the float function kept, one divisor per
activation, and weights on their int8 grid that cost less than rounding each to nearest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import fake_model

from pocketbert.formats.smoothed_layers import QMAX, SmoothedInput, smooth_and_fit

pytestmark = pytest.mark.unit

SEQ = 16
# SqueezeBERT as the real checkpoint's form has it: every projection a full matrix
ONE_GROUP = {"squeezebert": {f"{kind}_groups": 1 for kind in ("q", "k", "v", "intermediate", "output")}}


def _model_and_examples(arch: str = "bert"):
    """A tiny model whose LayerNorm outputs carry two outlier channels (as a trained BERT's
    do), its matrix layers and a few padded examples."""
    model = fake_model(arch, "feature-extraction", seed=4, **ONE_GROUP.get(arch, {})).eval()
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight[:2] *= 30
    layers = [name for name, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) or (isinstance(m, torch.nn.Conv1d) and m.groups == 1)]
    rng = np.random.default_rng(0)
    examples = []
    for seed in range(6):
        inputs = _random_inputs(model, seed)
        inputs["attention_mask"][:, int(rng.integers(4, SEQ)):] = 0  # padding rows are not text
        examples.append({k: torch.from_numpy(v) for k, v in inputs.items()})
    return model, layers, examples


def _random_inputs(model, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = {"input_ids": rng.integers(5, model.config.vocab_size, (2, SEQ)).astype(np.int64),
              "attention_mask": np.ones((2, SEQ), np.int64),
              "token_type_ids": np.zeros((2, SEQ), np.int64)}
    return {name: inputs[name] for name in model.input_names}


def _outputs(model, examples) -> list[torch.Tensor]:
    with torch.no_grad():
        return [model(**e)["last_hidden_state"] for e in examples]


@pytest.mark.parametrize("arch", ["bert", "squeezebert"])
def test_smoothing_keeps_the_function_and_shares_one_divisor_per_activation(arch):
    model, layers, examples = _model_and_examples(arch)
    smoothed, changed = smooth_and_fit(model, layers, examples, alpha=0.5, error_feedback=False)
    for before, after in zip(_outputs(model, examples), _outputs(smoothed, examples)):
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    wrapped = {name: m for name, m in smoothed.named_modules() if isinstance(m, SmoothedInput)}
    assert sorted(wrapped) == sorted(layers)  # every layer the examples reach
    # Q, K and V read one tensor: one divisor for the three; the FFN input another
    attention = [m for name, m in wrapped.items() if name.split(".")[-1] in ("query", "key", "value")][:3]
    assert len(attention) == 3 and all(torch.equal(m.inverse, attention[0].inverse) for m in attention)
    assert changed.smoothed < len(wrapped) and changed.fitted == 0
    assert float(attention[0].inverse.min()) < 0.5  # the outlier channels are divided down


def _layer_error(model, fitted, layers, examples, grid) -> float:
    """sum over layers of |X (W - W')|^2 on the examples' rows, W' = ``grid(W)``."""
    total, modules = 0.0, dict(model.named_modules())
    fitted_modules = dict(fitted.named_modules())
    seen = {}

    def hook(path):
        def record(_layer, inputs, _output):
            seen.setdefault(path, []).append(inputs[0].detach().reshape(-1, inputs[0].shape[-1]))
        return record

    handles = [modules[p].register_forward_hook(hook(p)) for p in layers]
    _outputs(model, examples)
    for handle in handles:
        handle.remove()
    for path, rows in seen.items():
        x = torch.cat(rows).double()
        w = modules[path].weight.detach().double()
        total += float(((x @ (w - grid(w, fitted_modules[path].weight.detach().double())).T) ** 2).sum())
    return total


def test_error_feedback_puts_weights_on_their_grid_and_beats_rounding_to_nearest():
    model, layers, examples = _model_and_examples()
    fitted, changed = smooth_and_fit(model, layers, examples, alpha=0.0, error_feedback=True)
    assert changed.fitted == len(layers) and changed.smoothed == 0
    modules = dict(fitted.named_modules())
    for path in layers:
        weight = modules[path].weight.detach().double()  # [N, K]
        step = weight.abs().amax(dim=1, keepdim=True) / QMAX
        codes = weight / step
        assert torch.allclose(codes, codes.round(), atol=1e-3)  # on the grid PT2E's observer derives
        assert (codes.abs().amax(dim=1).round() == QMAX).all()

    def nearest(w, _fitted):
        step = w.abs().amax(dim=1, keepdim=True) / QMAX
        return (w / step).round() * step

    def chosen(_w, fitted_weight):
        return fitted_weight

    assert _layer_error(model, fitted, layers, examples, chosen) < 0.8 * _layer_error(model, fitted, layers, examples,
                                                                                   nearest)
