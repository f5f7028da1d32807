"""python -m lineage.mlflow_server: MLflow's server code loads in the lock's environment."""

from __future__ import annotations

import os
import subprocess
import sys

from lineage import mlflow_server

# The module `mlflow server` loads first: it names sqlalchemy.Engine at import.
LOAD = "import mlflow.store.db.trace_rollups"


def load(environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LOAD], env=environment, capture_output=True, text=True, timeout=120
    )


def test_mlflow_server_code_needs_the_names_the_launcher_adds():
    plain = load(dict(os.environ))
    assert plain.returncode == 1
    assert "module 'sqlalchemy' has no attribute 'Engine'" in plain.stderr
    adapted = load(mlflow_server.server_environment(dict(os.environ)))
    assert adapted.returncode == 0, adapted.stderr[-2000:]


def test_the_launcher_keeps_the_users_path_and_job_setting():
    environment = mlflow_server.server_environment(
        {"PYTHONPATH": "/opt/mine", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}
    )
    assert environment["PYTHONPATH"] == f"{mlflow_server.COMPAT}{os.pathsep}/opt/mine"
    assert environment["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
    assert mlflow_server.server_environment({})["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
