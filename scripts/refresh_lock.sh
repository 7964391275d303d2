#!/usr/bin/env bash
# Re-resolve requirements.txt in a fresh virtual environment and write requirements-lock.txt,
# the exact versions the chapters execute with. The chapters' stored outputs belong to these
# versions: after a refresh, re-execute every chapter (CONTRIBUTING.md, "Refreshing the lock").
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
"$tmp/venv/bin/python" -m pip install -q -r requirements.txt
{
  echo "# Exact versions the book executes with (CPython $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())'), $(uname -m) Linux)."
  echo "# Made by scripts/refresh_lock.sh from requirements.txt on $(date -u +%Y-%m-%d); re-execute the chapters after a refresh."
  echo "# torch's platform-specific CUDA wheels (nvidia-*, cuda-*, triton) are left to torch's own pins."
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -viE '^(nvidia-|triton==|cuda-)'
} > requirements-lock.txt
echo "wrote requirements-lock.txt ($(grep -vc '^#' requirements-lock.txt) packages)"
