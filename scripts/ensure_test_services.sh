#!/usr/bin/env bash
# Debian packages the tests need beyond Python: a MariaDB server (MLMD on MySQL), a
# PostgreSQL server (Airflow's metastore for its real scheduler), a Redis server (the broker
# of Airflow's CeleryExecutor), Graphviz (lineage pictures) and Chromium (pages are checked
# as a browser renders them, offline). Installs them with apt-get when missing; the tests
# start and stop their own throwaway servers.
set -euo pipefail
missing=()
command -v mariadbd >/dev/null || missing+=(mariadb-server)
command -v dot >/dev/null || missing+=(graphviz)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "The tests need Debian packages: ${missing[*]}. Install them (apt-get install ${missing[*]})" >&2
  echo "as root, then run the tests again." >&2
  exit 1
fi
echo "Installing ${missing[*]} (Debian packages the tests use)..."
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# The tests use their own server (throwaway data folder, free port), whatever apt starts.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
