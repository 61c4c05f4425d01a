#!/usr/bin/env bash
# Install what is missing, then run every test: lint, the C unit tests (ctest, through
# pytest), the Python suites, and the Zephyr tier where a Zephyr installation is found.
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh --install-only
VENV=${FQT_VENV:-$PWD/.venv}
echo "== ruff"
"$VENV/bin/ruff" check .
echo "== pytest"
exec "$VENV/bin/python" -m pytest -ra "$@"
