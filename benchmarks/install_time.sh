#!/usr/bin/env bash
# Time to install the environment from requirements.lock as on a fresh machine: a new venv
# and an empty download cache (everything comes from the package index).
#   benchmarks/install_time.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=$(.venv/bin/python -c "import sys; print(sys._base_executable)")  # the CPython 3.10 of .venv
seconds() { date +%s.%N; }

t0=$(seconds)
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
t1=$(seconds)
UV_CACHE_DIR="$work/cache" "$work/venv/bin/python" -m uv pip install --quiet \
  --python "$work/venv/bin/python" -r requirements.lock
t2=$(seconds)
size=$(du -sh "$work/venv" | cut -f1)
packages=$(grep -c '==' requirements.lock)

echo "Machine: $(date +%F), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
echo
echo "| step | seconds |"
echo "| --- | --- |"
printf '| venv and uv | %.1f |\n' "$(echo "$t1 - $t0" | bc)"
printf '| %s locked packages, empty cache (uv) | %.1f |\n' "$packages" "$(echo "$t2 - $t1" | bc)"
printf '| total (%s on disk) | %.1f |\n' "$size" "$(echo "$t2 - $t0" | bc)"
