"""What Airflow costs around the pipeline: DAG parse time, per-task overhead, DAG run wall time.

    .venv/bin/python benchmarks/airflow_times.py [--skip-per-component]

Parse: each DAG file loaded by a fresh DagBag, as the scheduler's file processor does.
Runs: a real scheduler (LocalExecutor, parallelism 2) on a throwaway PostgreSQL, started with
scripts/airflow.sh, on a quarter of the bundled sample with a small training budget:
- cfpb-continuous-training: a span appears, the sensor sees it, the pipeline runs in one task;
- cfpb-dispute (unless --skip-per-component): one task per TFX component, each its own process.
Per-task overhead is a task's duration minus the time its component reports in MLMD.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import psycopg2  # noqa: E402
from support.postgres_server import postgres_server  # noqa: E402  (the tests' throwaway server)

from benchmarks.common import machine, markdown_table  # noqa: E402
from data import spans  # noqa: E402
from pipeline.config import BUNDLED_DATA_DIR  # noqa: E402

AIRFLOW = [str(ROOT / "scripts" / "airflow.sh")]
SMALL = {
    "CFPB_TRAIN_STEPS": "20",
    "CFPB_TUNER_TRIALS": "1",
    "CFPB_TUNER_TRAIN_STEPS": "10",
    "CFPB_MIN_AUC": "0.0",
}
PARSE = """
import sys, time
started = time.perf_counter()
from airflow.models import DagBag
imported = time.perf_counter()
bag = DagBag(sys.argv[1], include_examples=False)
assert not bag.import_errors, bag.import_errors
print(imported - started, time.perf_counter() - imported)
"""
DAG_FILES = {
    "cfpb-dispute": "airflow_runner.py",
    "cfpb-continuous-training": "airflow_training_dag.py",
}


def parse_times(env: dict) -> list[list]:
    rows = []
    for dag_id, name in DAG_FILES.items():
        out = (
            subprocess.run(
                [sys.executable, "-c", PARSE, str(ROOT / "runners" / name)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.splitlines()[-1]
            .split()
        )  # Airflow logs to stdout too
        rows.append([dag_id, f"{float(out[0]):.1f}", f"{float(out[1]):.1f}"])
    return rows


def quarter_sample(folder: Path) -> None:
    """Every 4th row of the bundled sample (about 1,650), as the Airflow test uses."""
    with open(BUNDLED_DATA_DIR / "complaints.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows, columns = list(reader)[::4], reader.fieldnames
    folder.mkdir(parents=True)
    with open(folder / spans.SPAN_CSV, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def wait_for_run(database: str, dag_id: str, timeout: float = 3600) -> tuple[float, list]:
    """(DAG run seconds, [(task, seconds, state)]) of the first run that ran its tasks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg2.connect(database) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT run_id, state, start_date, end_date FROM dag_run WHERE dag_id=%s "
                "AND state IN ('success', 'failed') ORDER BY start_date",
                (dag_id,),
            )
            for run_id, _state, start, end in cursor.fetchall():
                cursor.execute(
                    "SELECT task_id, duration, state, try_number FROM task_instance "
                    "WHERE dag_id=%s AND run_id=%s ORDER BY start_date",
                    (dag_id, run_id),
                )
                tasks = cursor.fetchall()
                if all(t[2] in ("success", "failed") for t in tasks):
                    return (end - start).total_seconds(), tasks
        time.sleep(5)
    raise RuntimeError(f"{dag_id}: no finished run in {timeout}s")


def scheduled_run(env: dict, database: str, dag_id: str, scratch: Path) -> tuple[float, list]:
    subprocess.run([*AIRFLOW, "dags", "reserialize"], env=env, check=True, capture_output=True)
    subprocess.run([*AIRFLOW, "dags", "unpause", dag_id], env=env, check=True, capture_output=True)
    log = open(scratch / f"scheduler-{dag_id}.log", "w")  # noqa: SIM115
    scheduler = subprocess.Popen([*AIRFLOW, "scheduler"], env=env, stdout=log, stderr=log)
    try:
        if dag_id == "cfpb-dispute":
            subprocess.run(
                [*AIRFLOW, "dags", "trigger", dag_id], env=env, check=True, capture_output=True
            )
        return wait_for_run(database, dag_id)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=120)


def component_seconds(output_dir: Path) -> dict[str, float]:
    """Seconds per component of the latest run, from MLMD (what the component itself took)."""
    from lineage import queries
    from pipeline.config import PipelineConfig
    from pipeline.metadata import store as lineage_store

    config = PipelineConfig(output_dir=str(output_dir))
    if not config.metadata_path.exists():
        return {}  # the DAG run failed before any component ran: its task states say why
    store = lineage_store.connect(config.metadata_connection_config())
    runs = lineage_store.run_ids(store, config.pipeline_name)
    return (
        {r.node_id: r.seconds for r in queries.run_summary(store, runs[-1]).executions}
        if runs
        else {}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-per-component", action="store_true", help="only the light DAG")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="airflow-bench-") as tmp, postgres_server() as url:
        scratch = Path(tmp)
        env = {
            **os.environ,
            **SMALL,
            "AIRFLOW_HOME": str(scratch / "home"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "CFPB_CT_SCHEDULE": "* * * * *",
            "CFPB_CT_POKE_SECONDS": "10",
            "CFPB_CT_TRAIN_RETRIES": "0",
        }
        subprocess.run([*AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
        results["parse"] = parse_times(env)
        database = url.replace("postgresql+psycopg2", "postgresql")
        dags = ["cfpb-continuous-training"] + ([] if args.skip_per_component else ["cfpb-dispute"])
        for dag_id in dags:
            data, out = scratch / dag_id / "data", scratch / dag_id / "outputs"
            quarter_sample(data / "span-1" if dag_id != "cfpb-dispute" else data)
            run_env = {
                **env,
                "CFPB_DATA_DIR": str(data),
                "CFPB_OUTPUT_DIR": str(out),
                "CFPB_AIRFLOW_DAGS": "training" if dag_id != "cfpb-dispute" else "pipeline",
            }
            print(f"{dag_id}: waiting for a scheduled run", file=sys.stderr)
            wall, tasks = scheduled_run(run_env, database, dag_id, scratch)
            inner = component_seconds(out)
            results[dag_id] = (wall, tasks, inner)
    print(f"Machine: {machine()}, {datetime.datetime.now():%H:%M}\n")
    print(
        markdown_table(
            ["DAG file", "import airflow (s)", "parse the DAG file (s)"], results["parse"]
        )
    )
    for dag_id in [d for d in results if d != "parse"]:
        wall, tasks, inner = results[dag_id]
        pipeline_total = sum(inner.values())
        task_total = sum(t[1] or 0 for t in tasks)
        print(
            f"\n{dag_id}: DAG run {wall:.0f} s; tasks {task_total:.0f} s; components in MLMD "
            f"{pipeline_total:.0f} s\n"
        )
        rows = [
            [t[0], f"{t[1] or 0:.1f}", t[2], f"{inner[t[0]]:.1f}" if t[0] in inner else "-"]
            for t in tasks
        ]
        print(markdown_table(["task", "task seconds", "state", "component seconds (MLMD)"], rows))
    print(json.dumps({k: v for k, v in results.items() if k == "parse"}), file=sys.stderr)


if __name__ == "__main__":
    main()
