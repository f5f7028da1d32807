"""The per-component DAG logs each run to MLflow from MLMD when CFPB_MLFLOW_TRACKING_URI is set."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SHOW_DAG = """
import json
from runners.airflow_runner import DAG
print(json.dumps({t.task_id: {"upstream": sorted(t.upstream_task_ids),
                              "command": getattr(t, "bash_command", None)} for t in DAG.tasks}))
"""


def dag_tasks(tmp_path, **settings: str) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "CFPB_OUTPUT_DIR": str(tmp_path / "out"),
        **settings,
    }
    result = subprocess.run(
        [sys.executable, "-c", SHOW_DAG], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mlflow_logging_is_a_last_task_only_when_asked(tmp_path):
    plain = dag_tasks(tmp_path)
    assert "log_to_mlflow" not in plain
    tasks = dag_tasks(tmp_path, CFPB_MLFLOW_TRACKING_URI="http://127.0.0.1:5999")
    log = tasks.pop("log_to_mlflow")
    assert set(tasks) == set(plain)
    last = sorted(t for t in tasks if not any(t in other["upstream"] for other in tasks.values()))
    assert log["upstream"] == last and "Pusher" in last
    assert (
        f"-m lineage --output-dir {tmp_path / 'out'} --pipeline-name cfpb-dispute"
        in (log["command"])
    )
    assert log["command"].endswith("mlflow '{{ run_id }}' --tracking-uri http://127.0.0.1:5999")
