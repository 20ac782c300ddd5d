#!/usr/bin/env bash
# Set up (first run only) and start a single wukongim node on its embedded defaults.
# Extra arguments go to `wukongim serve` (e.g. --data-dir DIR, --token-auth).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/wukongim ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e .
fi
exec .venv/bin/wukongim serve "$@"
