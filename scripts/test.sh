#!/usr/bin/env bash
# Set up, then run every test (slow ones included: they fit CI's budget).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
HF_HUB_OFFLINE=1 .venv/bin/python -m pytest "$@"
