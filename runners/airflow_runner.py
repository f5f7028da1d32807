"""Airflow DAG file: the pipeline from create_pipeline(config), one task per component.

Put this file (or a symlink to it) in Airflow's dags folder, with the project installed
in Airflow's environment. Settings come from environment variables, or from Airflow
Variables of the same name, with these defaults:

    CFPB_DATA_DIR        data/sample in the project
    CFPB_OUTPUT_DIR      outputs/airflow in the project
    CFPB_TRAIN_STEPS, CFPB_TUNER_TRIALS, CFPB_TUNER_TRAIN_STEPS, CFPB_MIN_AUC
    CFPB_MYSQL_HOST, CFPB_MYSQL_PORT, CFPB_MYSQL_DATABASE, CFPB_MYSQL_USER
                         MLMD on MySQL (password from $MLMD_MYSQL_PASSWORD); SQLite otherwise
    CFPB_SCHEDULE        cron or preset, e.g. @daily (default: none, runs when triggered)
    CFPB_START_DATE      ISO date of the first run (default 2024-01-01)
    CFPB_TUNE            a Tuner task in every run (default), or with false the latest tuned
                         hyperparameters (the search space's defaults until a run has tuned)
    CFPB_MLFLOW_TRACKING_URI  a last task, log_to_mlflow, logs each run to MLflow from MLMD
"""

from __future__ import annotations

import datetime
import shlex
import sys

from pipeline.config import PipelineConfig, redact_passwords_in_logs
from runners.airflow_settings import config_from_settings, setting, store_flags


def tunes() -> bool:
    """Whether the DAG has a Tuner task: from the settings alone, never from MLMD.

    Every task parses this file again. The other runners' rule, tune while MLMD holds no tuned
    hyperparameters, changed the graph as soon as a run's Tuner had published: the Trainer's
    own parse then waited for a resolver task that run never had, and the run failed.
    """
    value = setting("tune")
    return value is None or value.strip().lower() in ("1", "true", "yes")


def build_dag():
    from tfx.orchestration.airflow.airflow_dag_runner import (
        AirflowDagRunner,
        AirflowPipelineConfig,
    )

    from pipeline.pipeline import create_pipeline

    config = config_from_settings()
    redact_passwords_in_logs()
    start_date = datetime.datetime.fromisoformat(setting("start_date", "2024-01-01"))
    dag = AirflowDagRunner(
        AirflowPipelineConfig(
            airflow_dag_config={
                "schedule_interval": setting("schedule"),
                "start_date": start_date,
                "catchup": False,
            }
        )
    ).run(create_pipeline(config, tune=tunes()))
    if config.mlflow_tracking_uri:
        log_to_mlflow(dag, config)
    return dag


def log_to_mlflow(dag, config: PipelineConfig) -> None:
    """MLflow is a view of MLMD written after the run (docs/mlflow.md): a task after the last
    component logs this DAG run, whose Airflow run id is the pipeline's run id in MLMD."""
    from airflow.operators.bash import BashOperator

    last = [task for task in dag.tasks if not task.downstream_list]
    command = [sys.executable, "-m", "lineage", *store_flags(config)]
    command += ["--pipeline-name", config.pipeline_name, "mlflow"]
    log = BashOperator(
        task_id="log_to_mlflow",
        dag=dag,
        bash_command=shlex.join(command)
        + " '{{ run_id }}' --tracking-uri "
        + shlex.quote(config.mlflow_tracking_uri),
        retries=2,  # a tracking server restarting; the run itself is already in MLMD
        retry_delay=datetime.timedelta(minutes=1),
    )
    last >> log


DAG = build_dag()
