#!/usr/bin/env bash
# Lint and run the test suite, creating the environment first if it is missing.
# Arguments go to pytest: ./test.sh -k prepare
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure_env.sh
scripts/ensure_test_services.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
