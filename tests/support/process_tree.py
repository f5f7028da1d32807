"""Stopping a script that started its own processes (scripts/airflow_celery.sh)."""

from __future__ import annotations

import signal
import subprocess

import psutil


def stop_tree(setup: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM to the script (it stops what it started); whatever of its process tree is left
    after timeout_s (a task a worker was still running) is killed by pid."""
    try:
        tree = psutil.Process(setup.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    setup.send_signal(signal.SIGTERM)
    try:
        setup.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        setup.kill()
        setup.wait()
    for process in tree:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
