"""The continuous-training DAG file: light to parse, its tasks and retries as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from data import spans

SHOW_DAG = """
import json, sys
from runners.airflow_training_dag import dag
print(json.dumps({
    "heavy_imports": sorted(m for m in ("tensorflow", "tfx", "tensorflow_transform")
                            if m in sys.modules),
    "tasks": {t.task_id: {"retries": t.retries, "upstream": sorted(t.upstream_task_ids),
                          "mode": getattr(t, "mode", None),
                          "soft_fail": getattr(t, "soft_fail", None),
                          "skip_on_exit_code": getattr(t, "skip_on_exit_code", None),
                          "command": getattr(t, "bash_command", None)} for t in dag.tasks},
    "schedule": str(dag.schedule_interval), "max_active_runs": dag.max_active_runs,
}))
"""


def show_dag(tmp_path, **settings: str) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "CFPB_DATA_DIR": str(tmp_path / "data"),
        "CFPB_OUTPUT_DIR": str(tmp_path / "out"),
        **settings,
    }
    result = subprocess.run(
        [sys.executable, "-c", SHOW_DAG], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_dag_parses_without_tensorflow_and_runs_the_pipeline_on_new_spans(tmp_path):
    found = show_dag(tmp_path, CFPB_TRAIN_STEPS="7", CFPB_CT_SCHEDULE="*/10 * * * *")
    assert found["heavy_imports"] == []  # the scheduler parses this file often
    tasks = found["tasks"]
    assert set(tasks) == {"wait_for_new_span", "train_and_push"}
    sensor, train = tasks["wait_for_new_span"], tasks["train_and_push"]
    assert (sensor["mode"], sensor["soft_fail"], sensor["retries"]) == ("reschedule", True, 0)
    assert train["upstream"] == ["wait_for_new_span"] and train["retries"] == 1
    command = train["command"]
    assert "-m runners.beam_runner" in command and "--train-steps 7" in command
    assert f"--input-pattern '{spans.SPAN_PATTERN}'" in command
    assert f"--data-dir {tmp_path / 'data'}" in command
    assert found["schedule"] == "*/10 * * * *" and found["max_active_runs"] == 1


def test_monitoring_is_a_task_when_a_request_log_is_named(tmp_path):
    found = show_dag(tmp_path, CFPB_MONITOR_REQUEST_LOG=str(tmp_path / "log"))
    monitor = found["tasks"]["monitor_traffic"]
    assert monitor["retries"] == 0 and "-m monitoring " in monitor["command"]
    assert f"--request-log {tmp_path / 'log'} --output-dir {tmp_path / 'out'}" in monitor["command"]
    assert "traffic-{{ ts_nodash }}.html" in monitor["command"]


PENDING = """
import json
import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2 as pb
from runners.airflow_training_dag import config, pending_span

answers = [pending_span()]  # spans 1 and 3 have files, span 2 is an empty folder; none read
store = mlmd.MetadataStore(config().metadata_connection_config())
pipeline_type = store.put_context_type(pb.ContextType(name="pipeline"))
[context_id] = store.put_contexts([pb.Context(type_id=pipeline_type, name="cfpb-dispute")])
examples_type = store.put_artifact_type(
    pb.ArtifactType(name="Examples", properties={"span": pb.INT})
)
for span in (1, 3):  # ExampleGen reads span 1, then span 3; TFX 1.16 records it thus:
    artifact = pb.Artifact(type_id=examples_type, state=pb.Artifact.LIVE)
    artifact.custom_properties["span"].int_value = span
    [artifact_id] = store.put_artifacts([artifact])
    store.put_attributions_and_associations(
        [pb.Attribution(artifact_id=artifact_id, context_id=context_id)], []
    )
    answers.append(pending_span())
print(json.dumps(answers))
"""


def test_the_sensor_passes_on_the_oldest_unread_span_with_files(tmp_path):
    """Spans written between two runs are trained in order; an empty folder is not a span."""
    from conftest import bundled_rows, write_rows

    for span in (1, 3):
        write_rows(bundled_rows(every=500), tmp_path / "data" / f"span-{span}" / "complaints.csv")
    (tmp_path / "data" / "span-2").mkdir()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "CFPB_DATA_DIR": str(tmp_path / "data"),
        "CFPB_OUTPUT_DIR": str(tmp_path / "out"),
    }
    result = subprocess.run(
        [sys.executable, "-c", PENDING], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [1, 3, None]


def test_tuning_every_run_is_a_setting(tmp_path):
    """CFPB_TUNE reads as a switch: "false" must not turn tuning on."""
    assert (
        " --tune" not in show_dag(tmp_path, CFPB_TUNE="false")["tasks"]["train_and_push"]["command"]
    )
    assert " --tune" in show_dag(tmp_path, CFPB_TUNE="true")["tasks"]["train_and_push"]["command"]


def test_the_default_rollout_replace_adds_no_task(tmp_path):
    """The two-command path is unchanged: a push replaces the served version."""
    found = show_dag(tmp_path, CFPB_ABTEST_OUTCOMES=str(tmp_path / "outcomes.csv"))
    assert set(found["tasks"]) == {"wait_for_new_span", "train_and_push"}


def test_a_canary_rollout_enters_after_the_push_and_is_judged_on_schedule(tmp_path):
    found = show_dag(
        tmp_path,
        CFPB_ROLLOUT="canary",
        CFPB_ROLLOUT_CANARY_PERCENT="25",
        CFPB_ROLLOUT_TOKEN_FILE=str(tmp_path / "token.txt"),
        CFPB_ABTEST_OUTCOMES=str(tmp_path / "outcomes.csv"),
        CFPB_ABTEST_MAX_AUC_DROP="0.03",
    )
    assert found["heavy_imports"] == []
    tasks = found["tasks"]
    enter, judge = tasks["enter_rollout"], tasks["judge_rollout"]
    assert enter["upstream"] == ["train_and_push"] and enter["retries"] == 2
    assert "-m monitoring.rollout enter-run " in enter["command"]
    assert "--rollout canary --rollout-canary-percent 25.0" in enter["command"]
    assert judge["upstream"] == [] and judge["retries"] == 0  # every schedule, new span or not
    assert judge["skip_on_exit_code"] == [3]  # keep testing: skipped, not failed
    command = judge["command"]
    assert "-m monitoring.rollout auto " in command
    assert f"--model-config {tmp_path / 'out' / 'models.config'}" in command
    assert f"--rollout-file {tmp_path / 'out' / 'rollout.json'}" in command
    assert f"--request-log {tmp_path / 'out' / 'request_log'}" in command
    assert f"--outcomes {tmp_path / 'outcomes.csv'}" in command
    assert f"--token-file {tmp_path / 'token.txt'}" in command
    assert "--max-auc-drop 0.03 --min-outcomes 100 --max-error-rate 0.05" in command
    assert f"--output-dir {tmp_path / 'out'}" in command


def test_a_shadow_rollout_without_outcomes_only_enters(tmp_path):
    found = show_dag(tmp_path, CFPB_ROLLOUT="shadow", CFPB_MONITOR_REQUEST_LOG="/srv/log")
    assert set(found["tasks"]) == {
        "wait_for_new_span", "train_and_push", "enter_rollout", "monitor_traffic",
    }  # fmt: skip


def test_a_bad_rollout_setting_is_the_dag_files_import_error(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "h"), "CFPB_ROLLOUT": "blue-green",
           "CFPB_DATA_DIR": str(tmp_path)}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", SHOW_DAG], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0 and "CFPB_ROLLOUT" in result.stderr[-2000:]


def test_the_run_itself_replaces_and_the_rollout_task_enters(tmp_path):
    """The runner would also enter the push (enter_after_push); the DAG leaves it to its task."""
    train = show_dag(tmp_path, CFPB_ROLLOUT="canary")["tasks"]["train_and_push"]
    assert "--rollout" not in train["command"]
