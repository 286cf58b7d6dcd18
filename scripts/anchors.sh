#!/usr/bin/env bash
# Our files against the anchors' files of the same weights (issue 17), reproducibly:
#   bash scripts/anchors.sh [OUT_DIR] [--quick] [--archs A ..] [--rounds N] [--num-runs N] [--min-secs S] [--reuse]
# For every architecture: one checkpoint (pocketbert create --seed 0), our ONNX/TFLite files
# and their dynamic int8, Optimum's ONNX export and its dynamic int8 (the preset for the host's ISA:
# --avx512_vnni, --avx512, --avx2 or --arm64), litert-torch on
# transformers' own model and ai-edge-quantizer's dynamic int8; a logits check of each pair,
# then `pocketbert bench --compare` in interleaved rounds, 1 thread, seq 128. Table: OUT_DIR/anchors.md
# (default out/anchors). --quick: a 2-layer distilbert, 2 short rounds (a smoke test).
#
# Optimum pins its own transformers, so it gets its own venv (out/.venv-optimum, git-ignored;
# ANCHORS_VENV overrides), with the CPU build of torch like .venv and exact versions, so that
# a rerun measures the same anchors.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/anchors
if [ $# -gt 0 ] && [[ $1 != -* ]]; then out=$1; shift; fi
bash scripts/setup.sh
venv=${ANCHORS_VENV:-out/.venv-optimum}
OPTIMUM_PINS=("optimum-onnx[onnxruntime]==0.1.0" "optimum==2.1.0" "transformers==4.57.6" "onnxruntime==1.32.0" "onnx==1.23.2")
export PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.version.cuda is not None)" 2>/dev/null; then
  # the CPU build, never CUDA wheels: if the index pip would use offers torch 2.13.0 only with
  # NVIDIA libraries (PyPI's Linux wheel), take it from PyTorch's CPU index instead
  report=$(mktemp)
  "$venv/bin/python" -m pip install --quiet --dry-run --ignore-installed --report "$report" "torch==2.13.0"
  if "$venv/bin/python" -c "import json, sys; sys.exit(not any(p['metadata']['name'].startswith('nvidia') for p in json.load(open(sys.argv[1]))['install']))" "$report"; then
    "$venv/bin/python" -m pip install --quiet "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  else
    "$venv/bin/python" -m pip install --quiet "torch==2.13.0"
  fi
  rm -f "$report"
fi
"$venv/bin/python" -m pip install --quiet "${OPTIMUM_PINS[@]}"
"$venv/bin/python" -c "import torch; assert torch.version.cuda is None, 'the Optimum venv has a CUDA torch'"
export HF_HUB_OFFLINE=1 ANCHORS_COMMAND="bash scripts/anchors.sh $out $*"
exec .venv/bin/python -m pocketbert.benchmarks.anchors run "$out" --optimum-venv "$venv" "$@"
