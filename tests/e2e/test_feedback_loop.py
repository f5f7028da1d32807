"""The whole loop, as docs/feedback-and-monitoring.md's walk-through runs it by hand.

Train on span 1 and push; serve it with the real server; replay real complaints through REST;
their outcomes arrive; feedback.join writes span 2; Airflow's own scheduler (LocalExecutor,
metastore on a real PostgreSQL) sees the span and runs the pipeline; the new model, compared
with span 1's, is pushed because it is blessed; the server swaps to it with no failed request;
lineage names the request log rows and the outcomes file. Then the refusals: drifting traffic
stopped by the data gate, and a model below the bar not pushed while the server keeps its own.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest
import requests
from conftest import TINY_RUN_FLAGS, bundled_rows, write_rows
from support.postgres_server import postgres_server
from support.serving_harness import ServerProcess

from data import spans
from models import features
from pipeline.config import PROJECT_ROOT

# Not the DAG module: importing Airflow here would reconfigure this process's logging.
from runners.airflow_settings import TRAINING_DAG_ID as DAG_ID
from serving import request_log

AIRFLOW = [str(PROJECT_ROOT / "scripts" / "airflow.sh")]  # the documented command (docs/airflow.md)
PUSH_ALWAYS = ["--max-auc-drop", "1.0"]  # any blessed model replaces the last one
RUN_TIMEOUT_S = 900


def pipeline(data_dir: Path, output_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "runners.beam_runner", "--data-dir", str(data_dir)]
    command += ["--input-pattern", spans.SPAN_PATTERN, "--output-dir", str(output_dir)]
    return subprocess.run(
        [*command, *TINY_RUN_FLAGS, *flags], capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


def replay(server: ServerProcess, rows: list[dict]) -> None:
    """Real complaints sent as the server's feature objects, complaint ids included."""
    for start in range(0, len(rows), 50):
        instances = [{k: r[k] for k in features.RAW_FEATURE_KEYS} for r in rows[start : start + 50]]
        response = requests.post(f"{server.url}:predict", json={"instances": instances}, timeout=60)
        assert response.status_code == 200, response.text


def outcomes(rows: list[dict], path: Path) -> Path:
    return write_rows(
        [
            {features.ID_KEY: r[features.ID_KEY], features.LABEL_KEY: r[features.LABEL_KEY]}
            for r in rows
        ],
        path,
    )


def feedback(server: ServerProcess, outcomes_file: Path, data_dir: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "feedback", "--request-log", str(server.request_log.parent)]
        + ["--outcomes", str(outcomes_file), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Traffic:
    """One client asking every 50 ms (no complaint id), counting answers by code and version."""

    def __init__(self, server: ServerProcess, row: dict):
        self.url, self.body = f"{server.url}:predict", {"instances": [row]}
        self.codes: dict = {}
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                response = requests.post(self.url, json=self.body, timeout=30)
                self.codes[response.status_code] = self.codes.get(response.status_code, 0) + 1
                self.versions.append(response.headers.get("X-Model-Version", ""))
            except requests.RequestException as error:
                self.codes[type(error).__name__] = self.codes.get(type(error).__name__, 0) + 1

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def serving_version(server: ServerProcess) -> str:
    status = requests.get(server.url, timeout=10).json()["model_version_status"]
    return max((v["version"] for v in status if v["state"] == "AVAILABLE"), key=int)


@pytest.fixture
def scheduler(tmp_path):
    """Airflow's scheduler (LocalExecutor) on PostgreSQL, started by the documented script."""
    with postgres_server() as database:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "CFPB_AIRFLOW_DAGS": "training",
            "CFPB_CT_SCHEDULE": "* * * * *",
            "CFPB_CT_POKE_SECONDS": "5",
            "CFPB_CT_TRAIN_RETRIES": "0",
        }
        env["PATH"] = os.pathsep.join(  # a new user's PATH: the script must bring the venv
            p for p in env["PATH"].split(os.pathsep) if not p.startswith(sys.prefix)
        )
        subprocess.run([*AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
        yield env, database.replace("postgresql+psycopg2", "postgresql")


def start_scheduler(env: dict, log: Path) -> subprocess.Popen:
    subprocess.run([*AIRFLOW, "dags", "reserialize"], env=env, check=True, capture_output=True)
    subprocess.run([*AIRFLOW, "dags", "unpause", DAG_ID], env=env, check=True, capture_output=True)
    return subprocess.Popen(
        [*AIRFLOW, "scheduler"], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT
    )


def wait_for_training(database: str, log: Path, timeout: float = RUN_TIMEOUT_S) -> str:
    """The state train_and_push ends in, in the first DAG run that got that far."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg2.connect(database) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT ti.state, dr.run_type FROM task_instance ti JOIN dag_run dr ON "
                "dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id WHERE ti.dag_id = %s AND "
                "ti.task_id = 'train_and_push' AND ti.state IN ('success', 'failed')",
                (DAG_ID,),
            )
            done = cursor.fetchall()
        if done:
            assert done[0][1] == "scheduled"  # Airflow started it, not a trigger or a test
            return done[0][0]
        time.sleep(5)
    raise AssertionError(f"no training run in {timeout}s:\n{log.read_text()[-3000:]}")


def test_served_outcomes_retrain_push_and_swap_under_a_real_scheduler(scheduler, tmp_path):
    env, database = scheduler
    rows = [r for r in bundled_rows() if r[features.ID_KEY]]
    random.Random(0).shuffle(rows)
    first, served, drifting = rows[:1600], rows[1600:2000], rows[2000:]
    data, out = tmp_path / "data", tmp_path / "outputs"
    write_rows(first, data / "span-1" / spans.SPAN_CSV)

    # 1-2. Train on span 1, push, serve.
    run = pipeline(data, out, *PUSH_ALWAYS)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    server = ServerProcess(out / "serving_model", tmp_path).start()
    try:
        first_version = serving_version(server)
        # 3-5. Replay complaints, their outcomes arrive (30 still unknown), feedback writes span 2.
        before = mark()
        replay(server, served)
        replayed = (before, mark())
        known = outcomes(served[:-30], tmp_path / "outcomes.csv")
        assert "wrote" in feedback(server, known, data)
        assert "nothing new" in feedback(server, known, data)  # a rerun writes nothing
        assert sorted(spans.span_folders(data)) == [1, 2]

        # 6-8. The scheduler sees span 2 and runs the pipeline; the new model is pushed and the
        # server swaps to it while a client keeps asking.
        env.update(CFPB_DATA_DIR=str(data), CFPB_OUTPUT_DIR=str(out), CFPB_MAX_AUC_DROP="1.0")
        env.update(flag_settings(TINY_RUN_FLAGS))
        scheduler_log = tmp_path / "scheduler.log"
        airflow = start_scheduler(env, scheduler_log)
        try:
            with Traffic(server, {k: served[0][k] for k in ("product", "issue", "state")}) as load:
                assert wait_for_training(database, scheduler_log) == "success"
                deadline = time.monotonic() + 60
                while serving_version(server) == first_version and time.monotonic() < deadline:
                    time.sleep(0.5)
                time.sleep(1)
        finally:
            airflow.terminate()
            airflow.wait(timeout=60)
        assert load.codes.keys() == {200}, load.codes
        assert {first_version} < set(load.versions)
        new_version = serving_version(server)
        assert new_version != first_version

        # 9. Lineage: the pushed model learned from span 2, whose rows name the log and outcomes.
        trace = lineage(out, "trace", "latest-pushed")
        (manifest,) = trace["examples"]["feedback"]
        assert manifest["span"] == 2 and manifest["outcomes"]["path"] == str(known.resolve())
        assert manifest["request_log"]["files"][0]["path"] == str(server.request_log.resolve())
        assert manifest["counts"]["joined"] == len(served) - 30
        assert trace["evaluation"]["blessed"] and trace["evaluation"]["baseline_model_id"]
        text = lineage(out, "trace", "latest-pushed", json_output=False)
        assert str(known.resolve()) in text and "rows 1-" in text

        assert pending_span(env) is None  # span 2 is read: the next runs wait

        # 10. The monitor on the replayed traffic: like span 1's training data, so healthy.
        report = monitor(out, server, *replayed)
        assert report.returncode == 0 and f"version {first_version}" in report.stdout, report

        # Refusals. A model below the bar (a minimum AUC no model reaches) is not pushed, and
        # the server keeps the version it has.
        below = pipeline(data, out, "--min-auc", "0.999")
        assert below.returncode == 0, below.stderr[-3000:]
        assert "Blessed: no" in below.stdout and "nothing pushed" in below.stdout, below.stdout
        time.sleep(2)
        assert serving_version(server) == new_version
        # Traffic of one product only becomes span 3: the data gate stops the run on its drift.
        # Replayed with the walkthrough's tool, which also writes their outcomes.
        one_product = [r for r in drifting if r["product"] == drifting[0]["product"]][:200]
        tool = [sys.executable, "-m", "feedback.replay", "--url", server.url, "--rows"]
        drift = tmp_path / "drift-outcomes.csv"
        tool += [str(write_rows(one_product, tmp_path / "drift.csv")), "--outcomes-out", str(drift)]
        before = mark()
        assert subprocess.run(tool, capture_output=True).returncode == 0
        report = monitor(out, server, before, mark())  # the monitor sees it first
        assert report.returncode == 1 and "ALERT skew: product" in report.stdout, report
        assert "wrote" in feedback(server, drift, data)
        assert pending_span(env) == 3
        refused = pipeline(data, out, *PUSH_ALWAYS)
        assert refused.returncode == 1 and "product" in refused.stderr, refused.stderr[-3000:]
        assert pending_span(env) is None  # a refused span is not retried on every schedule
        assert serving_version(server) == new_version
    finally:
        assert server.stop() == 0


def mark() -> str:
    """Now, as the request log writes times (milliseconds), between two requests."""
    time.sleep(0.01)
    moment = request_log.iso(time.time())
    time.sleep(0.01)
    return moment


def monitor(output_dir: Path, server: ServerProcess, since: str, until: str):
    command = [sys.executable, "-m", "monitoring", "--output-dir", str(output_dir)]
    command += ["--request-log", str(server.request_log.parent), "--since", since, "--until", until]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def pending_span(env: dict) -> int | None:
    """The DAG's sensor, asked directly with the scheduler's settings."""
    code = "from runners.airflow_training_dag import pending_span; print(pending_span())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = result.stdout.strip().splitlines()[-1]
    return None if answer == "None" else int(answer)


def flag_settings(flags: list[str]) -> dict[str, str]:
    """Runner flags as the DAG's CFPB_* settings."""
    pairs = zip(flags[::2], flags[1::2], strict=True)
    return {"CFPB_" + flag.lstrip("-").replace("-", "_").upper(): value for flag, value in pairs}


def lineage(output_dir: Path, *args: str, json_output: bool = True):
    command = [sys.executable, "-m", "lineage", "--output-dir", str(output_dir)]
    result = subprocess.run(
        command + (["--json"] if json_output else []) + list(args), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if json_output else result.stdout
