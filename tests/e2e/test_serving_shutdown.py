"""No acknowledged prediction is lost: not to kill -9, not to a graceful SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
import time

import requests
from serving_harness import Load, ServerProcess, logged, push

pytest_plugins = ["serving_fixtures"]


def test_kill_9_under_load_loses_no_acknowledged_record_and_sigterm_finishes_in_flight(
    saved_model, tmp_path
):
    base_path = tmp_path / "serving_model"
    push(saved_model, base_path, 1)
    body = {"instances": [{"product": "Mortgage", "issue": "Loan modification"}] * 4}

    server = ServerProcess(base_path, tmp_path).start()
    load = Load(f"{server.url}:predict", body, clients=8, seconds=20).start()
    time.sleep(3)
    server.stop(signal.SIGKILL)
    load.stop()
    acknowledged = load.ok_ids()
    assert len(acknowledged) > 50
    # Every request that got a 200 is in the log, all 4 of its examples (SQLite replays the WAL).
    rows = logged(server)
    assert acknowledged <= set(rows)
    assert all(rows.count(request_id) == 4 for request_id in acknowledged)
    with sqlite3.connect(server.request_log) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # Restarted on the same log, it appends; then SIGTERM under load: what is in flight is
    # answered and logged, later requests are refused, and the exit is clean.
    restarted = ServerProcess(base_path, tmp_path).start()
    before = len(logged(restarted))
    load = Load(f"{restarted.url}:predict", body, clients=8, seconds=20).start()
    time.sleep(2)
    assert restarted.stop(signal.SIGTERM) == 0
    load.stop()
    acknowledged = load.ok_ids()
    assert len(acknowledged) > 20
    rows = logged(restarted)
    assert len(rows) > before and acknowledged <= set(rows)
    refused = [code for code, _, _ in load.results if code != 200]
    assert all(code in ("ConnectionError", 503) for code in refused), set(refused)
    assert "signal 15: finishing requests in flight" in restarted.log()
    try:
        requests.get(restarted.url, timeout=2)
        raise AssertionError("the server still answers after SIGTERM")
    except requests.ConnectionError:
        pass
