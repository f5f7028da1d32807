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
"""

from __future__ import annotations

import datetime

from pipeline.config import redact_passwords_in_logs
from runners.airflow_settings import config_from_settings, setting


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
    return AirflowDagRunner(
        AirflowPipelineConfig(
            airflow_dag_config={
                "schedule_interval": setting("schedule"),
                "start_date": start_date,
                "catchup": False,
            }
        )
    ).run(create_pipeline(config, tune=tunes()))


DAG = build_dag()
