"""Airflow DAG file: the pipeline from create_pipeline(config), one task per component.

Put this file (or a symlink to it) in Airflow's dags folder, with the project installed
in Airflow's environment. Settings come from environment variables, or from Airflow
Variables of the same name, with these defaults:

    CFPB_DATA_DIR        data/sample in the project
    CFPB_OUTPUT_DIR      outputs/airflow in the project
    CFPB_TRAIN_STEPS, CFPB_EVAL_STEPS, CFPB_TUNER_TRIALS, CFPB_TUNER_TRAIN_STEPS, CFPB_MIN_AUC
    CFPB_MYSQL_HOST, CFPB_MYSQL_PORT, CFPB_MYSQL_DATABASE, CFPB_MYSQL_USER
                         MLMD on MySQL (password from $MLMD_MYSQL_PASSWORD); SQLite otherwise
    CFPB_SCHEDULE        cron or preset, e.g. @daily (default: none, runs when triggered)
    CFPB_START_DATE      ISO date of the first run (default 2024-01-01)
"""

from __future__ import annotations

import dataclasses
import datetime
import os

from pipeline import checks
from pipeline.config import PROJECT_ROOT, PipelineConfig, redact_passwords_in_logs

SETTING_PREFIX = "CFPB_"


def setting(name: str, default: str | None = None) -> str | None:
    """An environment variable, else the Airflow Variable of the same name, else default."""
    key = SETTING_PREFIX + name.upper()
    if key in os.environ:
        return os.environ[key]
    from airflow.models import Variable

    return Variable.get(key, default_var=default)


def config_from_settings() -> PipelineConfig:
    """PipelineConfig with any field overridden by CFPB_<FIELD> settings."""
    defaults = PipelineConfig(output_dir=str(PROJECT_ROOT / "outputs" / "airflow"))
    overrides = {}
    for field in dataclasses.fields(PipelineConfig):
        value = setting(field.name)
        if value is not None and field.name != "extra_beam_args":
            overrides[field.name] = type(getattr(defaults, field.name))(value)
    config = dataclasses.replace(defaults, **overrides)
    problems = checks.setting_problems(config)
    if problems:  # Airflow shows it as the DAG file's import error
        raise ValueError("CFPB_* settings (flag names): " + "; ".join(problems))
    return config


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
    ).run(create_pipeline(config))


DAG = build_dag()
