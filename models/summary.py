"""What each registered architecture is, and whether its default config is the paper's size."""

from __future__ import annotations

from typing import Any

import torch

from pocketbert.models.registry import ARCHITECTURES, Architecture


def encoder_parameters(arch: Architecture) -> int:
    """Parameters of the bare encoder (with pooler) at paper size, as the papers count them.

    Built on the meta device: no memory, no initialisation, instant.
    """
    with torch.device("meta"):
        model = arch.tasks["feature-extraction"](arch.default_config())
    return model.num_parameters()


def architecture_summaries() -> list[dict[str, Any]]:
    rows = []
    for arch in ARCHITECTURES.values():
        millions = encoder_parameters(arch) / 1e6
        low, high = arch.paper_params_millions
        rows.append(
            {
                "architecture": arch.name,
                "paper": arch.paper,
                "params_millions": round(millions, 3),
                "paper_params_millions": [low, high],
                "matches_paper": low <= millions <= high,
                "tasks": list(arch.tasks),
            }
        )
    return rows
