"""The Airflow DAG file under a real Airflow 2 (SQLite metastore in a temporary AIRFLOW_HOME)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MODEL_CHAIN, pipeline_graph, write_quarter_sample
from ml_metadata.proto import metadata_store_pb2

from pipeline import names
from pipeline.config import PROJECT_ROOT, PipelineConfig
from pipeline.metadata import store as lineage
from pipeline.pipeline import create_pipeline

DAG_FILE = PROJECT_ROOT / "runners" / "airflow_runner.py"
DAG_ID = "cfpb-dispute"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
SMALL_RUN = {
    "CFPB_TRAIN_STEPS": "20",
    "CFPB_TUNER_TRIALS": "1",
    "CFPB_TUNER_TRAIN_STEPS": "10",
    "CFPB_MIN_AUC": "0.0",
}
DAG_EDGES = """
import json
from airflow.models import DagBag
dag = DagBag(include_examples=False).get_dag("cfpb-dispute")
print(json.dumps({t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}))
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """A fresh AIRFLOW_HOME with the DAG file linked in, and the pipeline's settings."""
    home = tmp_path_factory.mktemp("airflow_home")
    (home / "dags").mkdir()
    (home / "dags" / "cfpb.py").symlink_to(DAG_FILE)
    data_dir = tmp_path_factory.mktemp("airflow_data")
    write_quarter_sample(data_dir)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",  # importing TFX takes ~40 s here
        "CFPB_DATA_DIR": str(data_dir),
        "CFPB_OUTPUT_DIR": str(tmp_path_factory.mktemp("airflow_outputs")),
        **SMALL_RUN,
    }
    airflow(env, "db", "migrate")
    return env


def airflow(env: dict, *args: str, timeout: int = 600) -> str:
    result = subprocess.run(
        [AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_dag_loads_with_one_task_per_component_and_the_pipeline_edges(airflow_env):
    errors = airflow(airflow_env, "dags", "list-import-errors", "--output", "json")
    assert json.loads(errors.strip().splitlines()[-1]) == []  # after Airflow's own log lines

    result = subprocess.run(
        [sys.executable, "-c", DAG_EDGES],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    dag_edges = json.loads(result.stdout.strip().splitlines()[-1])

    config = PipelineConfig(output_dir=airflow_env["CFPB_OUTPUT_DIR"])
    assert dag_edges == pipeline_graph(create_pipeline(config))
    assert dag_edges[names.SCHEMA_GEN] == [names.STATISTICS_GEN]


def test_dag_run_pushes_a_blessed_model_with_lineage(airflow_env):
    airflow(airflow_env, "dags", "test", DAG_ID, "2024-06-01", timeout=1800)

    output_dir = Path(airflow_env["CFPB_OUTPUT_DIR"])
    versions = [p for p in (output_dir / "serving_model").iterdir() if p.name.isdigit()]
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
    card = versions[0] / "model_card.json"
    assert json.loads(card.read_text())["model"]["version"] == versions[0].name

    config = PipelineConfig(output_dir=str(output_dir))
    store = lineage.connect(config.metadata_connection_config())
    pushed = lineage.latest_pushed_model(store)
    assert pushed is not None
    steps = {step.node_id: step for step in lineage.upstream(store, pushed.id)}
    assert set(MODEL_CHAIN) <= set(steps)
    example_gen = steps[names.EXAMPLE_GEN].execution
    assert lineage.execution_property(example_gen, "input_base") == airflow_env["CFPB_DATA_DIR"]
    blessing = lineage.run_inputs(store, steps[names.PUSHER].execution.id)["model_blessing"][0]
    assert blessing.custom_properties["blessed"].int_value == 1
    # Airflow's launcher records runs in a "run" context, not TFX's pipeline_run: by node.
    states = {lineage.node_id(store, e.id): e.last_known_state for e in store.get_executions()}
    assert states[names.SCHEMA_GEN] == metadata_store_pb2.Execution.COMPLETE  # on Airflow too
