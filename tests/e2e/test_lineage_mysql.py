"""MLMD on a real MariaDB server: two pipeline runs at once, then trace and uses on them.

The server is Debian's mariadb-server, started here with a throwaway data folder on a free
loopback port; the password reaches the runner and the lineage command only through
$MLMD_MYSQL_PASSWORD.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TINY_RUN_FLAGS, running_nodes, write_quarter_sample
from ml_metadata.proto import metadata_store_pb2
from support.mariadb_server import mariadb_server

from lineage import queries
from pipeline import names
from pipeline.config import MYSQL_PASSWORD_ENV, PROJECT_ROOT, PipelineConfig
from pipeline.metadata import store as lineage

PIPELINES = ("cfpb-a", "cfpb-b")


@dataclass
class MySQLRuns:
    store: object
    outputs: dict[str, tuple[Path, str, int]]  # pipeline -> (output dir, console, exit code)
    sample: Path
    store_flags: list[str]
    env: dict[str, str]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    with (
        mariadb_server(tmp_path_factory.mktemp("mariadb")) as server,
        pytest.MonkeyPatch.context() as env_patch,
    ):
        env_patch.setenv(MYSQL_PASSWORD_ENV, server.password)
        yield server


OPEN_STORE = """
import sys
from pipeline.metadata import store as lineage
from pipeline.config import PipelineConfig
host, port, database, user = sys.argv[1:]
config = PipelineConfig(
    mysql_host=host, mysql_port=int(port), mysql_database=database, mysql_user=user
)
lineage.connect(config.metadata_connection_config())
"""


def test_processes_opening_a_new_database_at_once_all_connect(db):
    """MLMD's first connection creates its tables; racing processes retry, none fails."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, db.host, str(db.port), "fresh", db.user],
            cwd=PROJECT_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outcomes = [(process.communicate(timeout=300)[1], process.returncode) for process in processes]
    assert [error[-500:] for error, returncode in outcomes if returncode] == []


def store_flags_of(db) -> list[str]:
    return [
        *("--mysql-host", db.host, "--mysql-port", str(db.port)),
        *("--mysql-database", db.database, "--mysql-user", db.user),
    ]


def start_runner(name: str, data_dir: Path, output_dir: Path, store_flags: list[str]):
    """beam_runner.py on MySQL with tiny training settings, console captured."""
    return subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_ROOT / "runners" / "beam_runner.py"),
            *("--pipeline-name", name, "--data-dir", str(data_dir)),
            *("--output-dir", str(output_dir), *store_flags, *TINY_RUN_FLAGS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def mysql_runs(db, tmp_path_factory):
    """Two pipelines run at the same time, one MLMD database, the same data."""
    data_dir = tmp_path_factory.mktemp("mysql_data")
    sample = write_quarter_sample(data_dir)
    store_flags = store_flags_of(db)
    processes = {}
    for name in PIPELINES:
        output_dir = tmp_path_factory.mktemp(name)
        processes[name] = (output_dir, start_runner(name, data_dir, output_dir, store_flags))
    outputs = {
        name: (out, process.communicate(timeout=1800)[0], process.returncode)
        for name, (out, process) in processes.items()
    }
    config = PipelineConfig(
        mysql_host=db.host, mysql_port=db.port, mysql_database=db.database, mysql_user=db.user
    )
    store = lineage.connect(config.metadata_connection_config())
    return MySQLRuns(store, outputs, sample, store_flags, dict(os.environ))


def lineage_command(runs: MySQLRuns, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lineage", *runs.store_flags, *args]
    return subprocess.run(
        command, env=runs.env, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT
    )


def test_concurrent_runs_are_both_recorded_completely(mysql_runs):
    for name, (output_dir, console, returncode) in mysql_runs.outputs.items():
        assert returncode == 0, console[-3000:]
        (summary,) = queries.run_summaries(mysql_runs.store, name)
        assert summary.status == "COMPLETE"
        assert len(summary.executed) == 13 and not summary.cached
        assert summary.pushed_to.startswith(str(output_dir / "serving_model"))
        password = mysql_runs.env[MYSQL_PASSWORD_ENV]
        (log_file,) = (output_dir / "logs").iterdir()
        assert password not in console and password not in log_file.read_text()
    states = {e.last_known_state for e in mysql_runs.store.get_executions()}
    assert states == {lineage.metadata_store_pb2.Execution.COMPLETE}


def test_trace_on_mysql_reaches_the_input_file_fingerprint(mysql_runs):
    sample = mysql_runs.sample
    result = lineage_command(mysql_runs, "--json", "trace", "latest-pushed")
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)
    (input_file,) = found["examples"]["input_files"]
    assert input_file["path"] == str(sample)
    assert input_file["sha256"] == hashlib.sha256(sample.read_bytes()).hexdigest()
    with open(sample, newline="", encoding="utf-8") as handle:
        sample_rows = sum(1 for _ in csv.DictReader(handle))
    assert sum(found["examples"]["split_counts"].values()) == sample_rows
    assert found["training"]["train_steps"] == 10
    assert found["evaluation"]["blessed"] is True
    assert found["model"]["package_versions"]["tfx"] == "1.16.0"


def test_uses_on_mysql_lists_the_models_of_both_pipelines(mysql_runs):
    result = lineage_command(mysql_runs, "--json", "uses", str(mysql_runs.sample.parent))
    assert result.returncode == 0, result.stderr[-2000:]
    models = json.loads(result.stdout)
    assert len(models) == 2
    assert all(m["blessed"] for m in models)
    pushed = sorted(p for m in models for p in m["pushed_to"])
    assert [Path(p).parent.parent.name for p in pushed] == sorted(
        out.name for out, _, _ in mysql_runs.outputs.values()
    )


def test_a_run_from_another_folder_leaves_live_executions_alone(db, tmp_path):
    """Same pipeline name, one MySQL store, two output folders (say a local and an Airflow
    run): the second run's recovery used to cancel the first run's live executions."""
    write_quarter_sample(tmp_path / "data")
    config = PipelineConfig(
        mysql_host=db.host, mysql_port=db.port, mysql_database=db.database, mysql_user=db.user
    )
    store = lineage.connect(config.metadata_connection_config())
    flags = store_flags_of(db)
    first = start_runner("cfpb-shared", tmp_path / "data", tmp_path / "first", flags)
    deadline = time.monotonic() + 600
    while names.TRANSFORM not in running_nodes(store, "cfpb-shared"):  # then ~1 min of work
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()[-3000:]
        time.sleep(0.5)
    second = start_runner("cfpb-shared", tmp_path / "data", tmp_path / "second", flags)
    consoles = [process.communicate(timeout=1800)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], (
        consoles[0][-2000:] + consoles[1][-2000:]
    )
    assert "marked CANCELED" not in consoles[1]
    states = {
        metadata_store_pb2.Execution.State.Name(e.last_known_state)
        for run in queries.run_summaries(store, "cfpb-shared")
        for e in (r.execution for r in run.executions)
    }
    assert states <= {"COMPLETE", "CACHED"}


def test_a_wrong_password_or_a_new_database_is_one_line_in_seconds(db, tmp_path):
    """MLMD said 'mysql_real_connect failed: errno: , error: ' after 17 s, with a traceback."""
    flags = store_flags_of(db)
    wrong = {**os.environ, MYSQL_PASSWORD_ENV: "not-the-password"}
    started = time.monotonic()
    runner = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "runners" / "beam_runner.py"), *flags],
        env=wrong,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    question = subprocess.run(
        [sys.executable, "-m", "lineage", *flags, "runs"],
        env=wrong,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert time.monotonic() - started < 60
    refused = f"MySQL for MLMD at {db.host}:{db.port} refused user '{db.user}' (Access denied"
    assert runner.returncode == 2 and refused in runner.stderr.strip().splitlines()[-1]
    assert question.returncode == 1 and question.stderr.startswith(f"error: {refused}")
    assert "Traceback" not in runner.stderr + question.stderr
    # A database that does not exist yet is MLMD's to create: the question gets a plain answer.
    new = [*flags[:-4], "--mysql-database", "not_created_yet", *flags[-2:]]
    fresh = subprocess.run(
        [sys.executable, "-m", "lineage", *new, "runs"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert fresh.returncode == 1
    assert fresh.stderr.strip() == "error: no runs of pipeline cfpb-dispute (pipelines: none)"
