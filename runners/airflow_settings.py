"""Settings of the Airflow DAG files: CFPB_<NAME> environment variables or Airflow Variables.

Kept free of TFX and TensorFlow imports, so that a DAG file that only schedules work (the
continuous-training DAG) parses in a second or two, as Airflow recommends for DAG files.
"""

from __future__ import annotations

import dataclasses
import os

from cli import bounds
from pipeline import preflight
from pipeline.config import PROJECT_ROOT, PipelineConfig

SETTING_PREFIX = "CFPB_"
TRAINING_DAG_ID = "cfpb-continuous-training"  # runners/airflow_training_dag.py


# The continuous-training DAG's own numbers (runners/airflow_training_dag.py): default, range.
TRAINING_DAG_NUMBERS = {
    "ct_poke_seconds": ("60", bounds.seconds(86_400, above=True)),
    "ct_wait_seconds": ("3000", bounds.seconds(30 * 86_400, above=True)),
    "ct_train_retries": ("1", bounds.count(0, 100)),
    # The scheduled A/B judgement of a rollout (python -m monitoring.rollout auto).
    "abtest_max_auc_drop": ("0.02", bounds.fraction("an AUC difference")),
    "abtest_min_outcomes": ("100", bounds.count(10, meaning="outcomes")),
    "abtest_max_error_rate": ("0.05", bounds.fraction("a share of requests")),
}


def number_setting(name: str) -> int | float:
    """A numeric CFPB_<NAME> setting of TRAINING_DAG_NUMBERS, checked against its Range."""
    default, allowed = TRAINING_DAG_NUMBERS[name]
    return allowed.convert(SETTING_PREFIX + name.upper(), setting(name, default))


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
        if value is None or field.name == "extra_beam_args":
            continue
        allowed = field.metadata["bounds"]
        if allowed is not None:  # a number: parsed and checked by its Range, nan refused
            overrides[field.name] = allowed.convert(SETTING_PREFIX + field.name.upper(), value)
        elif isinstance(getattr(base, field.name), bool):
            overrides[field.name] = value.strip().lower() in ("1", "true", "yes")
        else:
            overrides[field.name] = value
    config = dataclasses.replace(base, **overrides)
    problems = preflight.setting_problems(config)
    if problems:  # Airflow shows it as the DAG file's import error
        raise ValueError("CFPB_* settings (flag names): " + "; ".join(problems))
    return config


def store_flags(settings) -> list[str]:
    """The MLMD store's flags: the served model's lineage is in the pipeline's store."""
    flags = ["--output-dir", settings.output_dir]
    if settings.mysql_host:
        flags += ["--mysql-host", settings.mysql_host, "--mysql-port", str(settings.mysql_port)]
        flags += ["--mysql-database", settings.mysql_database, "--mysql-user", settings.mysql_user]
    return flags
