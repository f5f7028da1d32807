"""The per-component DAG on Airflow's CeleryExecutor: wall time with 1 and 2 workers, and what
each task costs beyond its component.

    .venv/bin/python benchmarks/airflow_celery.py [--workers 1 2]

For each worker count, a fresh set-up as docs/airflow.md starts it (scripts/airflow_celery.sh:
Celery workers of one task each, and the scheduler) on a throwaway Redis broker, PostgreSQL
metastore and MariaDB for MLMD (the tests' servers), with a new pipeline root and MLMD database,
runs one triggered `cfpb-dispute` on a quarter of the bundled sample with the tests' tiny
training flags. Per-task overhead is a task's time in Airflow, from when a worker picked it up
to its end, minus the time its component's execution took in MLMD: Celery's hand-off, the
fork, parsing the DAG file (TFX's imports), the launcher and MLMD's bookkeeping.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import psycopg2  # noqa: E402
from conftest import TINY_RUN_FLAGS, write_quarter_sample  # noqa: E402
from support.mariadb_server import mariadb_server  # noqa: E402  (the tests' throwaway servers)
from support.postgres_server import postgres_server  # noqa: E402
from support.process_tree import stop_tree  # noqa: E402
from support.redis_server import redis_server  # noqa: E402

from benchmarks.common import machine, markdown_table  # noqa: E402
from pipeline.config import MYSQL_PASSWORD_ENV, PipelineConfig  # noqa: E402

AIRFLOW = [str(ROOT / "scripts" / "airflow.sh")]
CELERY_SETUP = [str(ROOT / "scripts" / "airflow_celery.sh")]
DAG_ID = "cfpb-dispute"
RUN_TIMEOUT_S = 3600


@dataclass
class Task:
    """One task instance. Airflow's start_date is set after `airflow tasks run` has parsed the
    DAG file (TFX's imports): the start-up before it is overhead too. A worker picks a task up
    when it is queued or, if busy, when its previous task ends."""

    task_id: str
    worker: str
    wait: float  # queued until its worker was free
    startup: float  # picked up until Airflow's start: Celery's hand-off, fork, DAG file parse
    seconds: float  # Airflow's start to end (the task's duration)
    component_seconds: float | None  # the execution in MLMD

    @property
    def overhead(self) -> float | None:
        """Picked up to end, minus the component's own time."""
        if self.component_seconds is None:
            return None
        return self.startup + self.seconds - self.component_seconds


@dataclass
class DagRun:
    workers: int
    state: str
    wall_seconds: float
    tasks: list[Task]


def airflow(env: dict, *args: str) -> None:
    subprocess.run([*AIRFLOW, *args], env=env, check=True, capture_output=True, timeout=900)


def task_instances(database: str, run_id: str) -> tuple[str, float, list[tuple]] | None:
    """(state, wall seconds, task rows) once the run has ended, else None."""
    connection = psycopg2.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT state, start_date, end_date FROM dag_run WHERE dag_id=%s AND run_id=%s",
                (DAG_ID, run_id),
            )
            state, start, end = cursor.fetchone()
            if state not in ("success", "failed"):
                return None
            cursor.execute(
                "SELECT task_id, hostname, queued_dttm, start_date, end_date FROM task_instance "
                "WHERE dag_id=%s AND run_id=%s ORDER BY start_date",
                (DAG_ID, run_id),
            )
            rows = cursor.fetchall()
    finally:
        connection.close()  # a with-block would commit on it after close: one per poll
    return state, (end - start).total_seconds(), rows


def component_seconds(config: PipelineConfig) -> dict[str, float]:
    """Each node's execution time in MLMD (a fresh database: one execution per node)."""
    from pipeline.metadata import store as lineage

    store = lineage.connect(config.metadata_connection_config())
    return {
        lineage.node_id(store, e.id): (e.last_update_time_since_epoch - e.create_time_since_epoch)
        / 1000
        for e in store.get_executions()
    }


def measure(env: dict, workers: int, scratch: Path, database: str, mlmd) -> DagRun:
    run_id = f"bench-{workers}-workers"
    run_env = {
        **env,
        "CFPB_OUTPUT_DIR": str(scratch / f"root-{workers}"),
        "CFPB_MYSQL_DATABASE": f"mlmd_{workers}_workers",  # MLMD creates it: no cache hits
    }
    log = scratch / f"celery-{workers}.log"
    setup = subprocess.Popen(
        [*CELERY_SETUP, str(workers)],
        env=run_env,
        stdout=open(log, "w"),  # noqa: SIM115 (lives as long as the set-up)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        airflow(run_env, "dags", "trigger", DAG_ID, "--run-id", run_id)
        deadline, ended = time.monotonic() + RUN_TIMEOUT_S, None
        while ended is None:
            if setup.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{run_id} did not end:\n{log.read_text()[-3000:]}")
            time.sleep(5)
            ended = task_instances(database, run_id)
    finally:
        stop_tree(setup, 120)
    state, wall, rows = ended
    config = PipelineConfig(
        mysql_host=mlmd.host,
        mysql_port=mlmd.port,
        mysql_database=run_env["CFPB_MYSQL_DATABASE"],
        mysql_user=mlmd.user,
    )
    inner = component_seconds(config)
    tasks, free = [], {}  # worker -> when its last task ended
    for task_id, host, queued, started, finished in rows:
        if None in (queued, started, finished):
            continue  # never ran (upstream failed): the run's state says so
        worker = (host or "?").split("@")[0]
        picked = max(queued, free.get(worker, queued))
        free[worker] = finished
        tasks.append(
            Task(
                task_id,
                worker,
                (picked - queued).total_seconds(),
                (started - picked).total_seconds(),
                (finished - started).total_seconds(),
                inner.get(task_id),
            )
        )
    return DagRun(workers, state, wall, tasks)


def summary_rows(runs: list[DagRun]) -> list[list]:
    def cell(values: list[float]) -> str:
        return f"{statistics.mean(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    def total(run: DagRun, value) -> str:
        return f"{sum(value(t) or 0 for t in run.tasks):.0f}"

    return [
        ["DAG run state", *(r.state for r in runs)],
        ["DAG run wall (s)", *(f"{r.wall_seconds:.0f}" for r in runs)],
        [
            "components' own time in MLMD, sum (s)",
            *(total(r, lambda t: t.component_seconds) for r in runs),
        ],
        ["per-task overhead, sum (s)", *(total(r, lambda t: t.overhead) for r in runs)],
        [
            "per-task overhead, mean (min-max) (s)",
            *(cell([t.overhead for t in r.tasks if t.overhead is not None]) for r in runs),
        ],
        [
            "of which start-up before Airflow's start, mean (min-max) (s)",
            *(cell([t.startup for t in r.tasks]) for r in runs),
        ],
        ["waiting for a free worker, sum (s)", *(total(r, lambda t: t.wait) for r in runs)],
        [
            "tasks per worker",
            *(
                ", ".join(
                    f"{w}: {sum(t.worker == w for t in r.tasks)}"
                    for w in sorted({t.worker for t in r.tasks})
                )
                for r in runs
            ),
        ],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], choices=range(1, 9))
    args = parser.parse_args()
    runs = []
    with (
        tempfile.TemporaryDirectory(prefix="airflow-celery-bench-") as tmp,
        mariadb_server(Path(tmp)) as mlmd,
        postgres_server() as metastore,
        redis_server() as broker,
    ):
        scratch = Path(tmp)
        write_quarter_sample(scratch / "data")
        pairs = zip(TINY_RUN_FLAGS[::2], TINY_RUN_FLAGS[1::2], strict=True)
        env = {
            **os.environ,
            **{"CFPB_" + f.lstrip("-").replace("-", "_").upper(): v for f, v in pairs},
            "AIRFLOW_HOME": str(scratch / "airflow_home"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metastore,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "support.worker_hostname.hostname",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(RUN_TIMEOUT_S),  # one worker: a queue
            "PYTHONPATH": str(ROOT / "tests"),
            "CFPB_AIRFLOW_DAGS": "pipeline",
            "CFPB_DATA_DIR": str(scratch / "data"),
            "CFPB_MYSQL_HOST": mlmd.host,
            "CFPB_MYSQL_PORT": str(mlmd.port),
            "CFPB_MYSQL_USER": mlmd.user,
            MYSQL_PASSWORD_ENV: mlmd.password,
        }
        os.environ[MYSQL_PASSWORD_ENV] = mlmd.password  # for this process's MLMD queries
        for command in (["db", "migrate"], ["dags", "reserialize"], ["dags", "unpause", DAG_ID]):
            airflow(env, *command)
        database = metastore.replace("+psycopg2", "")
        for workers in args.workers:
            print(f"{workers} worker(s): one run of {DAG_ID}", file=sys.stderr)
            runs.append(measure(env, workers, scratch, database, mlmd))
    print(f"Machine: {machine()}, {datetime.datetime.now():%H:%M}\n")
    header = ["CeleryExecutor, `cfpb-dispute`", *(f"{r.workers} worker(s)" for r in runs)]
    print(markdown_table(header, summary_rows(runs)))
    for run in runs:
        rows = [
            [
                t.task_id,
                t.worker,
                f"{t.wait:.1f}",
                f"{t.startup:.1f}",
                f"{t.seconds:.1f}",
                f"{t.component_seconds:.1f}" if t.component_seconds is not None else "-",
                f"{t.overhead:.1f}" if t.overhead is not None else "-",
            ]
            for t in run.tasks
        ]
        print(f"\n{run.workers} worker(s), tasks in start order:\n")
        header = ["task", "worker", "wait (s)", "start-up (s)", "task (s)", "component (s)"]
        print(markdown_table([*header, "overhead (s)"], rows))


if __name__ == "__main__":
    main()
