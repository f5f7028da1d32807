"""Stopping the tests' servers (stop_process) and a script that started its own processes
(stop_tree: scripts/airflow_celery.sh)."""

from __future__ import annotations

import subprocess

import psutil


def stop_process(process: subprocess.Popen, timeout_s: float, terminate: bool = True) -> None:
    """SIGTERM the process (unless the caller stopped it another way: terminate=False) and wait
    up to timeout_s for it to end; then kill it and reap it."""
    if terminate:
        process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_tree(setup: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM to the script (it stops what it started); whatever of its process tree is left
    after timeout_s (a task a worker was still running) is killed by pid."""
    try:
        tree = psutil.Process(setup.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    stop_process(setup, timeout_s)
    for process in tree:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
