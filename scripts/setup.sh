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
stamp=.venv/.pocketbert-setup
wanted=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ] && .venv/bin/python -c "import pocketbert, torch" 2>/dev/null; then
  exit 0
fi
export PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,tflite,executorch,accelerators,distributed]"
echo "$wanted" > "$stamp"
