#!/usr/bin/env bash
# The main job: set up, then build the built-in default models (paper-size MobileBERT,
# SqueezeBERT, DistilBERT and the BERT-base baseline, random weights, a 2-label
# classification head: "classify a text snippet", as the papers timed), export each to
# ONNX, TorchScript (.pt/.ptl) and TFLite (seq 128) with validation plus the default int8
# file (LiteRT dynamic-range int8, the fastest measured), classify a sentence with it,
# check parity of every file, and run the three paper protocols and MLPerf Mobile's language
# task (MobileBERT int8, QA, seq 384, p90 over >= 1024 queries and >= 60 s) on this machine
# (1 and 2 threads, every runtime). Report: out/report/bench.{md,json,png} + parity-*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
pb=.venv/bin/pocketbert
start=$SECONDS
models=out/models
report=out/report
mkdir -p "$report"
$pb models
text="a quiet garden in the morning, calm and lovely."
for arch in $($pb models --names); do
  dir="$models/$arch"
  $pb create "$arch" "$dir/checkpoint" --task text-classification --force
  $pb export "$dir/checkpoint" --format onnx -o "$dir/onnx" --force
  $pb export "$dir/checkpoint" --format torchscript -o "$dir/torchscript" --force
  $pb export "$dir/checkpoint" --format tflite --seq-len 128 -o "$dir/tflite" --force
  $pb quantize "$dir/tflite" --recipe tflite-dynamic-int8 -o "$dir/tflite-dynamic-int8" --force
  echo "== the int8 file classifies: $($pb run --task text-classification --model "$dir/tflite-dynamic-int8" "$text")"
  $pb parity "$dir/checkpoint" "$dir/onnx" "$dir/torchscript" "$dir/tflite" --max-abs 1e-4 \
    --json "$report/parity-$arch.json"                       # fp32: gated
  # int8: the default gates (quality floors on real text); random weights give flat logits,
  # so a miss is reported here, not fatal (tests/test_real_weights.py gates a real checkpoint)
  $pb parity "$dir/checkpoint" "$dir/tflite-dynamic-int8" --json "$report/parity-$arch-int8.json" \
    || echo "-- $arch int8 under the default quality floors (random weights): $report/parity-$arch-int8.json"
  echo "-- $arch done at $((SECONDS - start)) s"
done
$pb bench --protocol all --work-dir "$models" --formats tflite onnx torchscript pytorch --threads 1 2 \
  --num-runs 10 --min-secs 0.5 \
  --json "$report/bench.json" --markdown "$report/bench.md" --plot "$report/bench.png"
echo "main job finished in $((SECONDS - start)) s; report in $report/"
