"""Live traffic against what the served model was trained on (python -m monitoring)."""
