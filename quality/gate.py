"""Is a quantized file still the model? The one rule every command that writes or checks an
int8 file applies, so that none exits 0 having written a collapsed file.

- Trained weights: the task's figures on real text against the documented floors
  (``models/tasks.py`` FLOORS: pooled cosine, label/token/top-1 agreement, span exact ...).
- Random weights (a checkpoint ``pocketbert create`` made; its config.json says so): their
  heads give near-flat logits, so an argmax figure flips between near-equal classes under
  any rounding and says nothing about the file (a random 2-layer MobileBERT's healthy
  dynamic int8 file keeps label agreement 0.97-0.99 on one text set and 0.94 on another).
  Such a file is judged on what random weights can show: how close its outputs stay to the
  float ones over the real sentences (``output_closeness``, 1 - relative L2 error), and for
  embeddings the pooled cosine. Measured on 2-layer random models of all four
  architectures, two seeds, every recipe of every format: dynamic, weight-only and float16
  files keep 0.92-1.00; static int8 LiteRT files of random classification heads keep
  0.77-0.94 (MobileBERT 0.77-0.86, label agreement down to 0.75; a paper-width BERT 0.86;
  SqueezeBERT 0.93-0.94). The floor, 0.9, is a relative error of a tenth, so a static int8
  file of a random classifier may need --keep-below-floor. An R^2 across sentences was tried first
  and is unfit: random heads vary across sentences less than int8 rounding moves them, so
  it called a SqueezeBERT file with label agreement 1.0 broken (R^2 0.06).

A file without a tokenizer cannot be measured on real text; it is not judged here (its
manifest says quality: null and the CLI says "not measured").
"""

from __future__ import annotations

from pocketbert.errors import PocketbertError
from pocketbert.models.tasks import FLOORS
from pocketbert.quality import metrics

# What random weights can show, and the floors that separate a working file from a collapsed one.
RANDOM_WEIGHTS_FLOORS = {"output_closeness": 0.9, "cosine_mean": FLOORS["cosine_mean"],
                         "cosine_min": FLOORS["cosine_min"]}
KEEP_FLAG = "--keep-below-floor"


class BelowFloorError(PocketbertError):
    """A quantized file measured under a floor: not written."""


def failures(quality: dict | None, random_weights: bool) -> list[str]:
    """One line per figure under its floor; [] when the file keeps them all or could not be
    measured on real text (no tokenizer)."""
    if not quality:
        return []
    if "error" in quality:
        return [f"real text: {quality['error']}"]
    floors = FLOORS if not random_weights else RANDOM_WEIGHTS_FLOORS
    weights = "random weights" if random_weights else "trained weights"
    return metrics.floor_failures(quality, floors, "{name} {value:.4f} < floor {floor:g}", f"{weights}, real text")


def regime_shortfalls(quality: dict | None, random_weights: bool) -> list[str]:
    """Short and long texts' figures under the floors the typical ones are gated on."""
    return metrics.regime_shortfalls(quality, FLOORS if not random_weights else RANDOM_WEIGHTS_FLOORS)


def below_floor(quality_by_file: dict[str, dict | None], random_weights: bool) -> dict[str, list[str]]:
    """file name -> its figures under the floors, for the files that have any."""
    found = {name: failures(quality, random_weights) for name, quality in quality_by_file.items()}
    return {name: lines for name, lines in found.items() if lines}


def refusal(below: dict[str, list[str]]) -> BelowFloorError:
    """The one-line refusal naming the first file's first figure under its floor."""
    name, lines = next(iter(below.items()))
    more = len(lines) - 1 + sum(len(rest) for rest in list(below.values())[1:])
    return BelowFloorError(f"{name}: {lines[0]}" + (f" (and {more} more)" if more else "")
                           + f": the quantized file does not keep the model, nothing written ({KEEP_FLAG} writes it anyway)")
