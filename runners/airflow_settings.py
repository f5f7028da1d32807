"""Settings of the Airflow DAG files: CFPB_<NAME> environment variables or Airflow Variables.

Kept free of TFX and TensorFlow imports, so that a DAG file that only schedules work (the
continuous-training DAG) parses in a second or two, as Airflow recommends for DAG files.
"""

from __future__ import annotations

import dataclasses
import os

from pipeline import checks
from pipeline.config import PROJECT_ROOT, PipelineConfig

SETTING_PREFIX = "CFPB_"
TRAINING_DAG_ID = "cfpb-continuous-training"  # runners/airflow_training_dag.py


def setting(name: str, default: str | None = None) -> str | None:
    """An environment variable, else the Airflow Variable of the same name, else default."""
    key = SETTING_PREFIX + name.upper()
    if key in os.environ:
        return os.environ[key]
    from airflow.models import Variable

    return Variable.get(key, default_var=default)


def config_from_settings(**defaults) -> PipelineConfig:
    """PipelineConfig with any field overridden by CFPB_<FIELD> settings; `defaults` replace
    PipelineConfig's own defaults where no setting is given."""
    base = PipelineConfig(output_dir=str(PROJECT_ROOT / "outputs" / "airflow"), **defaults)
    overrides = {}
    for field in dataclasses.fields(PipelineConfig):
        value = setting(field.name)
        if value is not None and field.name != "extra_beam_args":
            kind = type(getattr(base, field.name))
            overrides[field.name] = (
                value.strip().lower() in ("1", "true", "yes") if kind is bool else kind(value)
            )
    config = dataclasses.replace(base, **overrides)
    problems = checks.setting_problems(config)
    if problems:  # Airflow shows it as the DAG file's import error
        raise ValueError("CFPB_* settings (flag names): " + "; ".join(problems))
    return config
