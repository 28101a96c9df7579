#!/usr/bin/env bash
# The whole test suite: set-up, lint, types, then every tier (unit, swtpm, netns, system).
# Habits are tests too: tests/unit/test_habits.py (docstrings on >= 85 % of public definitions, no dead
# names) and tests/unit/test_design.py (imports obey docs/design.md's table) run with the unit tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/mypy  # strict, configured in pyproject.toml
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
