#!/usr/bin/env bash
# The whole test suite: set-up, lint, then every tier (unit, swtpm, netns, system).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
