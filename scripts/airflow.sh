#!/usr/bin/env bash
# Airflow from the project's environment, with the project's DAG files. Any Airflow command:
#   scripts/airflow.sh standalone          (scheduler, webserver and a SQLite metastore)
#   scripts/airflow.sh scheduler           (with AIRFLOW__DATABASE__SQL_ALCHEMY_CONN and
#                                           AIRFLOW__CORE__EXECUTOR=LocalExecutor for production)
#   scripts/airflow.sh dags test cfpb-dispute 2024-06-01
# Every setting below is a default: an exported variable of the same name wins.
set -euo pipefail
project=$(cd "$(dirname "$0")/.." && pwd)
"$project/scripts/ensure_env.sh"

# Executors start each task as `airflow tasks run ...` found on PATH: without the project's
# environment there, every task fails with FileNotFoundError: 'airflow'.
export PATH="$project/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$project/outputs/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$AIRFLOW_HOME/dags}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
# Parsing the per-component DAG imports TFX (about 40 s on 2 cores): allow it, and re-parse DAG
# files every 5 minutes rather than every 30 s.
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="${AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT:-300}"
export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="${AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL:-300}"
export AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT="${AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT:-300}"

# CFPB_AIRFLOW_DAGS picks the DAG files linked into the dags folder:
#   pipeline  runners/airflow_runner.py         cfpb-dispute, one task per TFX component
#   training  runners/airflow_training_dag.py   cfpb-continuous-training, a new span -> a run
mkdir -p "$AIRFLOW__CORE__DAGS_FOLDER"
rm -f "$AIRFLOW__CORE__DAGS_FOLDER/cfpb_pipeline.py" "$AIRFLOW__CORE__DAGS_FOLDER/cfpb_training.py"
for name in ${CFPB_AIRFLOW_DAGS:-pipeline training}; do
  case "$name" in
    pipeline) ln -sfn "$project/runners/airflow_runner.py" "$AIRFLOW__CORE__DAGS_FOLDER/cfpb_pipeline.py" ;;
    training) ln -sfn "$project/runners/airflow_training_dag.py" "$AIRFLOW__CORE__DAGS_FOLDER/cfpb_training.py" ;;
    *) echo "error: CFPB_AIRFLOW_DAGS: unknown DAG '$name' (use pipeline and/or training)" >&2; exit 2 ;;
  esac
done
exec airflow "$@"
