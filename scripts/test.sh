#!/usr/bin/env bash
# Set up, then run every test (slow ones included: they fit CI's budget). Installs what the
# tests need beyond Python too: a JDK for the android_demo tokenizer parity test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v javac >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless >/dev/null
  else
    echo "scripts/test.sh: no javac and no root apt-get to install one (the Java tokenizer test needs a JDK)" >&2
    exit 2
  fi
fi
bash scripts/install-software-gpu.sh
# one pytest worker per core (at most 4: the paper-size tests hold several GB each); a test
# file stays on one worker, so its module fixtures (conversions, the real checkpoint's
# exports, the fine-tuned classifier) run once: handed out test by test, they ran twice
# and the suite took longer (41 min against 38 here); the files go out longest first
# (tests/file_order.py, from tests/file_seconds.json) instead of xdist's most-tests-first
workers=$(nproc)
[ "$workers" -le 4 ] || workers=4
# one math thread per worker: two workers of two torch threads each on two cores took 264 s
# for test_quantized_accuracy + test_hostile_inputs, one thread each 207 s (benchmarks and
# runners that take --threads still set their own)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
