#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: lint, types, layers, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
if [ -f tests/interop/package.json ]; then
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff check";  ruff check .
echo "== ruff format"; ruff format --check .
echo "== mypy";        mypy
echo "== lint-imports"; lint-imports
echo "== pytest"
set +e
pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$rc"
