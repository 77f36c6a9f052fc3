#!/usr/bin/env bash
# The project's Python virtual environment (.deps/venv), made once from the machine's system
# Python: a stock Debian 12 / Ubuntu 24.04 python3 is "externally managed" (PEP 668) and refuses
# pip installs, so every Python tool the set-up and the tests use goes in here. Needs Debian's
# python3-venv (scripts/setup.sh installs it). Prints the environment's python.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.deps/venv"
if [ ! -x "$venv/bin/python" ]; then
  system_python=/usr/bin/python3
  [ -x "$system_python" ] || system_python=python3
  "$system_python" -m venv "$venv" >&2
fi
echo "$venv/bin/python"
