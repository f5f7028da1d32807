#!/usr/bin/env bash
# Serve the model ./run.sh pushed with TF Serving's REST (8501) and gRPC (8500) APIs on 127.0.0.1,
# creating the environment first if it is missing. More flags go to the server:
#   scripts/serve.sh --model_version_policy=latest:2 --log_features=none   (--help lists them)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure_env.sh
exec .venv/bin/python -m serving --model_name=cfpb --model_base_path=outputs/serving_model \
  --rest_api_port=8501 --port=8500 "$@"
