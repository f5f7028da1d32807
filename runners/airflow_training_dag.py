"""Airflow DAG file for continuous training: when a new span appears, run the pipeline on it.

DAG `cfpb-continuous-training`, on a schedule (CFPB_CT_SCHEDULE, default @hourly):

    wait_for_new_span  a sensor (reschedule mode: it frees its worker slot between pokes) that
                       succeeds when DATA_DIR holds a span with files newer than any span this
                       pipeline's ExampleGen has read, per MLMD, and passes the oldest such span
                       on; skipped if none comes before its timeout
    train_and_push     the whole pipeline from create_pipeline(config) on that span, one process
                       (python -m runners.beam_runner --span N): Transform, Tuner, Trainer,
                       Evaluator against the last blessed model, Pusher only if blessed
    monitor_traffic    optional (CFPB_MONITOR_REQUEST_LOG set): python -m monitoring on the
                       last day of served requests, a page under OUTPUT_DIR/monitor/; its alert
                       (exit 1) fails the task, which is the alert; "cannot judge" skips it
    enter_rollout      with CFPB_ROLLOUT=canary or shadow (default replace: no such task): the
                       version train_and_push pushed enters as canary or shadow next to stable
                       (python -m monitoring.rollout enter-run); nothing new pushed, nothing done
    judge_rollout      with a rollout and CFPB_ABTEST_OUTCOMES: on every schedule, new span or
                       not, python -m monitoring.rollout auto judges the candidate by its error
                       rate and A/B verdict: promoted (exit 0) succeeds; rolled back (exit 1)
                       fails the task, which is the alert; keep testing (exit 3) is skipped;
                       cannot judge (exit 2) fails

The pipeline runs as one task rather than one task per component (runners/airflow_runner.py):
each Airflow task process pays TensorFlow's and TFX's imports (30-60 s here), so nine tasks
cost minutes of imports. This file imports neither, so the scheduler parses it in seconds.

Settings (environment or Airflow Variables, see runners/airflow_settings.py): every
CFPB_<FIELD> of PipelineConfig (CFPB_INPUT_PATTERN defaults to span-{SPAN}/*.csv here), and
    CFPB_CT_SCHEDULE        cron or preset (default @hourly)
    CFPB_CT_POKE_SECONDS    seconds between looks for a new span (default 60)
    CFPB_CT_WAIT_SECONDS    how long one run waits for a span before it is skipped (default 3000)
    CFPB_CT_TRAIN_RETRIES   retries of train_and_push (default 1, after 5 minutes)
    CFPB_MONITOR_REQUEST_LOG  the model server's request log folder, to monitor each run
    CFPB_ROLLOUT            replace (default), canary or shadow; CFPB_ROLLOUT_* as the runner's
                            --rollout-* flags (the model config, rollout file, server, token)
    CFPB_ABTEST_OUTCOMES    the outcomes file judge_rollout reads (rewritten as outcomes arrive)
    CFPB_ABTEST_REQUEST_LOG the server's request log (default: CFPB_MONITOR_REQUEST_LOG, else
                            OUTPUT_DIR/request_log)
    CFPB_ABTEST_MAX_AUC_DROP, CFPB_ABTEST_MIN_OUTCOMES, CFPB_ABTEST_MAX_ERROR_RATE  the rule
                            (defaults 0.02, 100, 0.05); CFPB_ABTEST_CHECK_SKEW=true adds the
                            monitor's skew alert on the candidate
"""

from __future__ import annotations

import dataclasses
import datetime
import shlex
import sys

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.sensors.base import PokeReturnValue
from airflow.sensors.python import PythonSensor

from data import spans
from monitoring.continuous import model_config_path, rollout_path
from pipeline import preflight
from pipeline.config import ROLLOUT_MODES, SPAN_TOKEN, config_arguments
from runners.airflow_settings import (
    TRAINING_DAG_ID,
    config_from_settings,
    number_setting,
    setting,
    store_flags,
)

DAG_ID = TRAINING_DAG_ID


def config():
    found = config_from_settings(input_pattern=spans.SPAN_PATTERN)
    if SPAN_TOKEN not in found.input_pattern:
        raise ValueError(f"CFPB_INPUT_PATTERN must contain {SPAN_TOKEN}: spans are what arrives")
    if found.rollout not in ROLLOUT_MODES:
        raise ValueError(f"CFPB_ROLLOUT {found.rollout!r}: one of {', '.join(ROLLOUT_MODES)}")
    return found


def judge_arguments(settings, outcomes: str) -> list[str]:
    """python -m monitoring.rollout auto's flags for the rollout of these settings."""
    request_log = setting("abtest_request_log") or setting("monitor_request_log")
    flags = ["--model-config", str(model_config_path(settings))]
    flags += ["--rollout-file", str(rollout_path(settings))]
    flags += ["--request-log", request_log or f"{settings.output_dir}/request_log"]
    flags += ["--outcomes", outcomes]
    if settings.rollout_server_url:
        flags += ["--url", settings.rollout_server_url]
    else:
        flags.append("--no-reload")
    if settings.rollout_token_file:
        flags += ["--token-file", settings.rollout_token_file]
    for name in ("max_auc_drop", "min_outcomes", "max_error_rate"):
        flags += [f"--{name.replace('_', '-')}", str(number_setting(f"abtest_{name}"))]
    if (setting("abtest_check_skew") or "").strip().lower() in ("1", "true", "yes"):
        flags.append("--check-skew")
    return flags + store_flags(settings)


def pending_span() -> int | None:
    """The oldest span with input files that is newer than any span ExampleGen has read.

    Spans are trained in order, one run each: two spans written between runs are both read.
    """
    from pipeline.metadata import store as lineage_store  # MLMD only; no TensorFlow

    settings = config()
    found = preflight.span_files(settings)
    if not found:
        return None
    store = lineage_store.connect(settings.metadata_connection_config())
    ingested = lineage_store.newest_ingested_span(store, settings.pipeline_name) or 0
    waiting = [span for span in found if span > ingested]
    print(f"spans with files: {list(found)}; newest already read: {ingested or 'none'}")
    return min(waiting, default=None)


def new_span_ready() -> PokeReturnValue:
    span = pending_span()
    return PokeReturnValue(is_done=span is not None, xcom_value=span)


def build_dag() -> DAG:
    settings = config()
    python = shlex.quote(sys.executable)  # the environment the scheduler runs in
    with DAG(
        DAG_ID,
        schedule=setting("ct_schedule", "@hourly"),
        start_date=datetime.datetime.fromisoformat(setting("start_date", "2024-01-01")),
        catchup=False,
        max_active_runs=1,  # a run still training makes the next one wait, not race it
        tags=["cfpb", "continuous-training"],
        doc_md=__doc__,
    ) as dag:
        wait = PythonSensor(
            task_id="wait_for_new_span",
            python_callable=new_span_ready,
            mode="reschedule",
            poke_interval=number_setting("ct_poke_seconds"),
            timeout=number_setting("ct_wait_seconds"),
            soft_fail=True,  # no new span in this interval is not a failure
            retries=0,
        )
        train = BashOperator(
            task_id="train_and_push",
            # A push enters the rollout in its own task (enter_rollout), so the run replaces.
            bash_command=f"{python} -m runners.beam_runner "
            + shlex.join(config_arguments(dataclasses.replace(settings, rollout="replace")))
            + " --span {{ ti.xcom_pull(task_ids='wait_for_new_span') }}",
            # A rerun resumes from MLMD's cache, so a transient failure (a killed worker, the
            # MLMD database away) is retried once; a refusal by a gate fails again, quickly.
            retries=number_setting("ct_train_retries"),
            retry_delay=datetime.timedelta(minutes=5),
        )
        wait >> train
        request_log = setting("monitor_request_log")
        if request_log:
            watch = ["--request-log", request_log, *store_flags(settings)]
            watch += ["--html", f"{settings.output_dir}/monitor/traffic-{{{{ ts_nodash }}}}.html"]
            BashOperator(
                task_id="monitor_traffic",
                # The last day of traffic against the served model's training data.
                bash_command=f"{python} -m monitoring " + shlex.join(watch),
                retries=0,  # an alert is an answer, not a failure to retry
                skip_on_exit_code=2,  # cannot judge (too little traffic): skipped, not an alert
            )
        if settings.rollout != "replace":
            rollout_tasks(settings, python, train)
    return dag


def rollout_tasks(settings, python: str, train) -> None:
    """A pushed version enters the rollout; the candidate is judged on every schedule."""
    enter = BashOperator(
        task_id="enter_rollout",
        bash_command=f"{python} -m monitoring.rollout enter-run "
        + shlex.join(config_arguments(settings)),
        retries=2,  # another rollout change (judge_rollout) may hold the lock for a moment
        retry_delay=datetime.timedelta(minutes=1),
    )
    train >> enter
    outcomes = setting("abtest_outcomes")
    if outcomes:
        BashOperator(
            task_id="judge_rollout",
            bash_command=f"{python} -m monitoring.rollout auto "
            + shlex.join(judge_arguments(settings, outcomes)),
            retries=0,  # a rollback is an answer, not a failure to retry
            skip_on_exit_code=3,  # keep testing: too few outcomes yet
        )


dag = build_dag()
