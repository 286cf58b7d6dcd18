#!/usr/bin/env bash
# The main job: set up, then build the built-in default models (paper-size MobileBERT,
# SqueezeBERT, DistilBERT and the BERT-base baseline, random weights), export each to ONNX
# (+ .ort), TorchScript (.pt/.ptl) and TFLite (seq 128) with validation, and run the docs' fill-mask example
# on every exported file. Everything lands in out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
pb=.venv/bin/pocketbert
$pb models
for arch in $($pb models --names); do
  $pb create "$arch" "out/models/$arch" --force
  $pb export "out/models/$arch" --task fill-mask --format onnx --ort -o "out/exports/$arch-onnx" --force
  $pb export "out/models/$arch" --task fill-mask --format torchscript -o "out/exports/$arch-torchscript" --force
  $pb export "out/models/$arch" --task fill-mask --format tflite --seq-len 128 -o "out/exports/$arch-tflite" --force
  for target in "out/exports/$arch-onnx/model.onnx" "out/exports/$arch-onnx/model.ort" \
                "out/exports/$arch-torchscript/model.pt" "out/exports/$arch-torchscript/model.ptl" \
                "out/exports/$arch-tflite/model.tflite"; do
    echo "== $target"
    echo "The capital of France is [MASK]." | $pb run --task fill-mask --model "$target" --top-k 3
  done
done
