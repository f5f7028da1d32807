"""python -m lineage.mlflow_server: MLflow's tracking server, run from the project's environment.

    python -m lineage.mlflow_server --backend-store-uri sqlite:///outputs/mlflow.db --port 5000

Every flag is `mlflow server`'s (python -m mlflow server --help). Two things differ from running
it directly: SQLAlchemy 2's class names are added for MLflow's server code, which the lock's
SQLAlchemy 1.4 (kept for Airflow 2.10) lacks (mlflow_compat/sitecustomize.py), and MLflow's
background job runners (GenAI evaluation and trace jobs, not tracking or the registry) are off
unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION says otherwise: they are six more processes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

COMPAT = Path(__file__).resolve().parent / "mlflow_compat"


def server_environment(environ: dict[str, str]) -> dict[str, str]:
    """The environment the server and its workers start with."""
    paths = [str(COMPAT), *filter(None, [environ.get("PYTHONPATH")])]
    return {
        **environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": environ.get(
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["-h"], ["--help"]):
        print("usage: python -m lineage.mlflow_server [mlflow server flags]\n")
        print((__doc__ or "").split("\n", 1)[1].strip())
        return 0
    command = [sys.executable, "-m", "mlflow", "server", *args]
    os.execve(sys.executable, command, server_environment(dict(os.environ)))  # same process id
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
