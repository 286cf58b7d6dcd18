#!/usr/bin/env bash
# Set up .venv on a fresh machine: the CPU build of torch first, then pocketbert (editable)
# with its test, tflite, executorch, accelerators and distributed extras. Safe to run again: when the
# files that decide what is installed (pyproject.toml, constraints.txt, this script) are
# unchanged since the last complete install, it skips pip (seconds, not a minute: the fast
# test loop runs it every time); otherwise it installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Byte-compile pocketbert's own sources (seconds; only what changed). Where
# PYTHONDONTWRITEBYTECODE is set (it is on these machines) Python never writes .pyc files, so
# without this every process compiles each module it imports again: ~5.5 s of every CLI call,
# every fresh-process benchmark run and every test subprocess, against ~2.5 s compiled.
compile_sources() {
  local sources=(src tests)
  for link in src/pocketbert/*; do [ -L "$link" ] && sources+=("$(readlink -f "$link")"); done
  .venv/bin/python -m compileall -q -j 0 "${sources[@]}" >/dev/null
}
stamp=.venv/.pocketbert-setup
wanted=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ] && .venv/bin/python -c "import pocketbert, torch" 2>/dev/null; then
  compile_sources
  exit 0
fi
export PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
extras=".[test,tflite,executorch,accelerators,distributed]"
# uv installs the same pins in a fraction of pip's time (pip took ~2 min 45 s of CI's budget).
# It reads no pip.conf, so it is held to the CPU build by its local version (+cpu) from the
# find-links pip is given; where uv or that wheel is missing, pip does it as before.
cpu_torch=.venv/cpu-torch.txt
echo "torch==2.13.0+cpu" > "$cpu_torch"
uv_install() {
  local links=()
  for location in ${PIP_FIND_LINKS:-$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true)}; do
    links+=(--find-links "$location")
  done
  [ -z "${PIP_CERT:-}" ] || [ -n "${SSL_CERT_FILE:-}" ] || export SSL_CERT_FILE="$PIP_CERT"
  .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python --constraint constraints.txt \
    --constraint "$cpu_torch" "${links[@]}" "$@"
}
if .venv/bin/python -m pip install --quiet uv >/dev/null 2>&1 && uv_install "torch==2.13.0+cpu" && uv_install -e "$extras"; then
  :
else
  echo "setup: installing with pip" >&2
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  .venv/bin/python -m pip install --quiet -e "$extras"
fi
compile_sources
echo "$wanted" > "$stamp"
