"""Activation ranges for ai-edge-quantizer's static recipes: true min/max, and the masked scores.

Two measured faults of the quantizer's own calibration on all-MiniLM-L6-v2, 16-bit activations
(held-out text, pooled cosine against the float file):

- ``Quantizer.calibrate`` merges examples with a moving average that weighs the past at 0.95,
  so a range is mostly the last ~20 examples': the rare long text's ranges were forgotten and
  its activations saturated (the pooling's token count capped at 25.8). Where calibration
  mixes lengths (16-bit activations, and recipes whose weights are fitted to it) every range
  here is the min and max over all examples (16 bits: long texts' cosine mean 0.907 -> 0.997;
  tflite-static-int8, tuning text: short-text min 0.988 -> 0.996, its attention outputs had
  clipped on "Sure!"). The 8-bit-everywhere recipe keeps the quantizer's average, on the corpus
  sentences: 255 steps stretched to a rare extreme cost every other text resolution.
- The scores that reach SOFTMAX carry the padding bias (-10000): the ADD's calibrated range
  spanned 10000 where real scores span about 100, so one 16-bit step was 0.3 (8-bit: 79, every
  score the same code). Its range is now the scores' own, with the minimum lowered by
  ``MASKED_MARGIN``: padded keys saturate there, and exp(-20) of a probability is below what
  the float model resolves next to a real key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketbert.models.blocks import MASK_BIAS

MASKED_MARGIN = 20.0


def calibrated_ranges(source: Path, entries: list[dict], feed: dict[str, list[dict]], every_example: bool) -> dict:
    """{tensor name: {"min", "max"}} over the examples of ``feed`` (by signature): the min and
    max over all of them (``every_example``), or the quantizer's average."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(entries)
    merge = {"qsv_update_func": qsv_utils.min_max_update} if every_example else {}
    calibration = calibrator.Calibrator(source.read_bytes(), num_threads=2, **merge)
    calibration.calibrate(feed, manager)
    return bound_masked_scores(source, calibration.get_model_qsvs())


def bound_masked_scores(source: Path, ranges: dict) -> dict:
    """Each SOFTMAX input's minimum raised to its unmasked scores' minimum - MASKED_MARGIN."""
    from pocketbert.formats.tflite.graph import masked_score_adds, subgraphs

    for graph in subgraphs(source):
        for add in masked_score_adds(graph):
            if graph.tensor_names[add.outputs[0]] not in ranges:
                continue
            inputs = [ranges.get(graph.tensor_names[t]) for t in add.inputs]
            scores = [r for r in inputs if r and float(np.min(r["min"])) > MASK_BIAS / 2]  # not the bias
            if len(scores) != 1:
                continue
            masked = ranges[graph.tensor_names[add.outputs[0]]]
            floor = float(np.min(scores[0]["min"])) - MASKED_MARGIN
            masked["min"] = np.maximum(masked["min"], np.asarray(floor, dtype=np.float32))
    return ranges
