#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) from requirements.lock.
# Safe to run again: it does nothing while the lock and setup.py are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.installed-from"
wanted=$(cat requirements.lock setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
  exit 0
fi

# TFX 1.16 needs CPython 3.10 (see README, "Versions").
find_python() {
  for candidate in "${PYTHON:-}" python3.10 "$HOME/.pyenv/versions/3.10.13/bin/python" python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}
if [ ! -x "$VENV/bin/python" ]; then
  python=$(find_python) || {
    echo "error: CPython 3.10 not found. Install it (e.g. 'pyenv install 3.10.13') or set PYTHON=/path/to/python3.10" >&2
    exit 1
  }
  echo "Creating $VENV with $python"
  "$python" -m venv "$VENV"
fi

echo "Installing pinned dependencies from requirements.lock (about a minute with uv)..."
start=$SECONDS
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
"$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python" -r requirements.lock
"$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python" --no-deps -e .
echo "Environment ready in $((SECONDS - start))s"
echo "$wanted" > "$STAMP"
