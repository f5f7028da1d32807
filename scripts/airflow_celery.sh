#!/usr/bin/env bash
# Airflow's CeleryExecutor on this machine: a Redis broker, WORKERS Celery workers (one task at a
# time each) and the scheduler, all from the project's environment (scripts/airflow.sh).
# Ctrl-C or SIGTERM stops them all.
#   export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow@localhost/airflow
#   scripts/airflow.sh db migrate
#   scripts/airflow_celery.sh [WORKERS]          (default 2)
# The broker is AIRFLOW__CELERY__BROKER_URL when set; otherwise Redis on 127.0.0.1:CFPB_REDIS_PORT
# (6379), started here (data under $AIRFLOW_HOME/redis) unless one already answers there.
# Worker N is Celery's workerN@<host> and runs with CFPB_CELERY_WORKER=workerN. Workers on other
# machines: `scripts/airflow.sh celery worker` with the same exports (docs/airflow.md).
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  echo "usage: scripts/airflow_celery.sh [WORKERS]"
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
project=$(cd "$(dirname "$0")/.." && pwd)
workers=${1:-2}
if ! [[ "$workers" =~ ^[1-9][0-9]?$ ]]; then
  echo "error: WORKERS must be a number of workers from 1 to 99, not '$workers'" >&2
  exit 2
fi
case "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-}" in
  postgresql* | mysql*) ;;
  *)
    echo "error: the CeleryExecutor needs a PostgreSQL or MySQL metastore: export" \
      "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://USER@HOST/DB, then" \
      "scripts/airflow.sh db migrate" >&2
    exit 2
    ;;
esac
export AIRFLOW_HOME="${AIRFLOW_HOME:-$project/outputs/airflow_home}"
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
# Each task is a process that imports TensorFlow: one at a time per worker (and per core).
export AIRFLOW__CELERY__WORKER_CONCURRENCY="${AIRFLOW__CELERY__WORKER_CONCURRENCY:-1}"
# The scheduler sends a task under a 1 s alarm by default; on a busy machine the first send,
# which imports redis, is cut short and leaves the module half-imported: every later send fails
# with "module 'redis' has no attribute 'client'" (apache/airflow#41359) and the run fails.
export AIRFLOW__CELERY__OPERATION_TIMEOUT="${AIRFLOW__CELERY__OPERATION_TIMEOUT:-30}"

pids=()
stop_all() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait || true # a worker finishes its running task first (Celery's warm shutdown)
}
trap stop_all EXIT
trap 'exit 143' INT TERM

if [ -z "${AIRFLOW__CELERY__BROKER_URL:-}" ]; then
  port=${CFPB_REDIS_PORT:-6379}
  export AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:$port/0"
  if [ "$(redis-cli -p "$port" ping 2>/dev/null)" != PONG ]; then
    command -v redis-server >/dev/null || {
      echo "error: redis-server not found: install Debian's redis-server (apt-get install redis-server)" >&2
      exit 1
    }
    mkdir -p "$AIRFLOW_HOME/redis"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$AIRFLOW_HOME/redis" \
      --logfile "$AIRFLOW_HOME/redis/redis.log" &
    pids+=($!)
    for _ in $(seq 50); do
      [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
      sleep 0.2
    done
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] || {
      echo "error: Redis did not start on port $port: see $AIRFLOW_HOME/redis/redis.log" >&2
      exit 1
    }
  fi
fi

# Each worker serves its task logs on one port (8793): on one machine only the scheduler's
# AIRFLOW_HOME/logs is read, so the workers skip it.
for n in $(seq "$workers"); do
  CFPB_CELERY_WORKER="worker$n" "$project/scripts/airflow.sh" celery worker \
    --celery-hostname "worker$n@%h" --skip-serve-logs &
  pids+=($!)
done
"$project/scripts/airflow.sh" scheduler &
pids+=($!)
set +e
wait -n
status=$?
echo "error: a process of the Celery set-up stopped (exit $status): stopping the others" >&2
exit 1
