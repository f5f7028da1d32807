"""The per-component DAG `cfpb-dispute` on Airflow's CeleryExecutor, beyond one worker.

Two Celery workers, a Redis broker, a PostgreSQL metastore and MLMD on MariaDB, all started
here; the pipeline root is one folder both workers write to. The workers and the scheduler are
started as docs/airflow.md says (scripts/airflow_celery.sh). Each worker names itself through
Airflow's `[core] hostname_callable` (tests/support/worker_hostname.py), so the task instances
record which worker ran them. The pushed model's lineage is compared with a local run's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from conftest import TINY_RUN_FLAGS, write_quarter_sample
from support.mariadb_server import mariadb_server
from support.postgres_server import postgres_server
from support.process_tree import stop_tree
from support.redis_server import redis_server
from support.worker_hostname import WORKER_ENV

from pipeline import names
from pipeline.config import MYSQL_PASSWORD_ENV, PROJECT_ROOT, PipelineConfig
from pipeline.metadata import store as lineage

AIRFLOW = [str(PROJECT_ROOT / "scripts" / "airflow.sh")]
CELERY_SETUP = [str(PROJECT_ROOT / "scripts" / "airflow_celery.sh")]
DAG_ID = "cfpb-dispute"
RUN_ID = "celery-e2e"
WORKERS = ("worker1", "worker2")
DAG_TASKS = """
import json
from airflow.models import DagBag
print(json.dumps(sorted(DagBag(include_examples=False).get_dag("cfpb-dispute").task_ids)))
"""
RUN_TIMEOUT_S = 1800  # 13 tasks that each import TensorFlow, two at a time on 2 cores
LOCAL_RUN_TIMEOUT_S = 900
STOP_TIMEOUT_S = 90


@dataclass
class CeleryRun:
    state: str  # the DAG run's
    tasks: dict[str, tuple[str, str]]  # task id -> (state, recorded hostname)
    output_dir: Path
    data_dir: Path
    store: object  # MLMD on MariaDB
    console: str  # the Celery set-up's own output, for failure messages
    env: dict[str, str]  # the scheduler's and workers' settings


def airflow(env: dict, *args: str, timeout: int = 600) -> str:
    result = subprocess.run(
        [*AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def flag_settings(flags: list[str]) -> dict[str, str]:
    """Runner flags as the DAG's CFPB_* settings."""
    pairs = zip(flags[::2], flags[1::2], strict=True)
    return {"CFPB_" + flag.lstrip("-").replace("-", "_").upper(): value for flag, value in pairs}


def wait_for_run(database: str, setup: subprocess.Popen, log: Path) -> tuple[str, dict]:
    """The DAG run's end state and its task instances (state, hostname), once it has ended."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        assert setup.poll() is None, f"the Celery set-up stopped:\n{log.read_text()[-4000:]}"
        with psycopg2.connect(database) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (DAG_ID, RUN_ID)
            )
            (state,) = cursor.fetchone()
            cursor.execute(
                "SELECT task_id, state, hostname FROM task_instance "
                "WHERE dag_id = %s AND run_id = %s",
                (DAG_ID, RUN_ID),
            )
            tasks = {task: (task_state, host) for task, task_state, host in cursor.fetchall()}
        connection.close()
        if state in ("success", "failed"):
            return state, tasks
        time.sleep(5)
    raise AssertionError(f"no end to run {RUN_ID} in {RUN_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory):
    """One triggered run of cfpb-dispute on two Celery workers; the workers and scheduler are
    stopped before the tests look at it, the databases stay up until the module ends."""
    scratch = tmp_path_factory.mktemp("celery")
    with (
        mariadb_server(scratch) as mlmd,
        postgres_server() as metastore,
        redis_server() as broker,
    ):
        data_dir, output_dir = scratch / "data", scratch / "pipeline_root"
        write_quarter_sample(data_dir)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(scratch / "airflow_home"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metastore,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "support.worker_hostname.hostname",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "PYTHONPATH": str(PROJECT_ROOT / "tests"),  # support.worker_hostname
            "CFPB_AIRFLOW_DAGS": "pipeline",
            "CFPB_DATA_DIR": str(data_dir),
            "CFPB_OUTPUT_DIR": str(output_dir),  # the pipeline root both workers write to
            "CFPB_MYSQL_HOST": mlmd.host,
            "CFPB_MYSQL_PORT": str(mlmd.port),
            "CFPB_MYSQL_DATABASE": mlmd.database,
            "CFPB_MYSQL_USER": mlmd.user,
            MYSQL_PASSWORD_ENV: mlmd.password,
            **flag_settings(TINY_RUN_FLAGS),
        }
        env.pop(WORKER_ENV, None)
        env["PATH"] = os.pathsep.join(  # a new user's PATH: the scripts must bring the venv
            p for p in env["PATH"].split(os.pathsep) if not p.startswith(sys.prefix)
        )
        airflow(env, "db", "migrate")
        airflow(env, "dags", "reserialize")
        airflow(env, "dags", "unpause", DAG_ID)
        log = scratch / "celery.log"
        setup = subprocess.Popen(
            [*CELERY_SETUP, str(len(WORKERS))],
            env=env,
            stdout=open(log, "w"),  # noqa: SIM115 (lives as long as the set-up)
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in pytest's terminal is not the set-up's
        )
        try:
            airflow(env, "dags", "trigger", DAG_ID, "--run-id", RUN_ID)
            state, tasks = wait_for_run(metastore.replace("+psycopg2", ""), setup, log)
        finally:
            stop_tree(setup, STOP_TIMEOUT_S)
        config = PipelineConfig(
            mysql_host=mlmd.host,
            mysql_port=mlmd.port,
            mysql_database=mlmd.database,
            mysql_user=mlmd.user,
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(MYSQL_PASSWORD_ENV, mlmd.password)
            store = lineage.connect(config.metadata_connection_config())
        yield CeleryRun(state, tasks, output_dir, data_dir, store, log.read_text(), env)


@pytest.fixture(scope="module")
def local_store(celery_run, tmp_path_factory):
    """The same data and flags through the local runner (BeamDagRunner, MLMD on SQLite)."""
    output_dir = tmp_path_factory.mktemp("local_run")
    command = [sys.executable, "-m", "runners.beam_runner", "--data-dir", str(celery_run.data_dir)]
    result = subprocess.run(
        [*command, "--output-dir", str(output_dir), *TINY_RUN_FLAGS],
        capture_output=True,
        text=True,
        timeout=LOCAL_RUN_TIMEOUT_S,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = PipelineConfig(output_dir=str(output_dir))
    return lineage.connect(config.metadata_connection_config())


def lineage_shape(store) -> dict:
    """The pushed model's upstream: each node with the input keys it read, and the blessing."""
    pushed = lineage.latest_pushed_model(store)
    assert pushed is not None, "no pushed model in this store"
    steps = {step.node_id: step for step in lineage.upstream(store, pushed.id)}
    blessing = steps[names.PUSHER].inputs["model_blessing"][0]
    return {
        "nodes": {node: sorted(step.inputs) for node, step in steps.items()},
        "blessed": blessing.custom_properties["blessed"].int_value == 1,
    }


def test_component_tasks_run_on_both_celery_workers(celery_run):
    assert celery_run.state == "success", celery_run.console[-4000:]
    assert {state for state, _ in celery_run.tasks.values()} == {"success"}, celery_run.tasks
    workers = {host.split("@")[0] for _, host in celery_run.tasks.values()}
    assert workers == set(WORKERS), celery_run.tasks
    # Every component of the pipeline was a task, and each one is in MLMD, whichever worker ran it.
    ran = {lineage.node_id(celery_run.store, e.id) for e in celery_run.store.get_executions()}
    assert set(celery_run.tasks) == ran
    versions = [p for p in (celery_run.output_dir / "serving_model").iterdir() if p.name.isdigit()]
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()


def test_the_dag_keeps_its_tasks_once_a_run_has_tuned(celery_run):
    """Every task parses the DAG file again. The graph once had a Tuner only while MLMD held
    no tuned hyperparameters: the Trainer's own parse, after this run's Tuner, then waited for
    a resolver task the run never had, and the run failed."""
    result = subprocess.run(
        [sys.executable, "-c", DAG_TASKS],
        env=celery_run.env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == sorted(celery_run.tasks)
    assert names.TUNER in celery_run.tasks


def test_pushed_model_has_a_local_runs_lineage_shape(celery_run, local_store):
    on_celery = lineage_shape(celery_run.store)
    assert on_celery == lineage_shape(local_store)
    assert on_celery["blessed"] is True
    assert set(on_celery["nodes"]) >= {names.EXAMPLE_GEN, names.TRAINER, names.EVALUATOR}
