#!/usr/bin/env bash
# Run the pipeline locally on Apache Beam, creating the environment first if it is missing.
# Flags go to runners/beam_runner.py: ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure_env.sh
exec .venv/bin/python runners/beam_runner.py "$@"
