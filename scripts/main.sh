#!/usr/bin/env bash
# The main job: set up, then build and check the built-in default models (paper-size
# MobileBERT, SqueezeBERT, DistilBERT and the BERT-base baseline, random weights) in out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/pocketbert models
for arch in $(.venv/bin/pocketbert models --names); do
  .venv/bin/pocketbert create "$arch" "out/models/$arch" --force
  .venv/bin/pocketbert info "out/models/$arch"
done
