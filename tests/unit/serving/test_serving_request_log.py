"""The request log: committed before the answer, group-committed, private, bounded."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time

import numpy as np

from serving.request_log import Entry, RequestLog


def example(**values: str) -> dict:
    return {name: ("bytes", [value.encode()]) for name, value in values.items()}


def entry(request_id: str, n: int = 1, **values: str) -> Entry:
    return Entry(
        request_id=request_id,
        received=time.time(),
        model_name="cfpb",
        version=3,
        label="canary",
        protocol="rest",
        signature="serving_default",
        examples=[example(**values)] * n,
        known={"product", "complaint_id", "consumer_complaint_narrative"},
        unknown=["Product"],
        outputs={"dispute_probability": np.full(n, 0.25, np.float32), "disputed": np.zeros(n)},
        latency_ms=1.5,
    )


def rows(path: str) -> list[dict]:
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(r) for r in connection.execute("SELECT * FROM predictions ORDER BY id")]


def test_an_entry_is_committed_when_its_future_resolves(tmp_path):
    commits = []
    log = RequestLog(str(tmp_path), on_commit=lambda n, s: commits.append(n))
    futures = []

    def client(i: int) -> None:
        for j in range(50):
            future = log.append(entry(f"r{i}-{j}", product="Mortgage", complaint_id="77"))
            future.result(5)
            # Committed means another connection sees it, not only this process's buffers.
            assert any(r["request_id"] == f"r{i}-{j}" for r in rows(log.path)[-20:])
            futures.append(future)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    logged = rows(log.path)
    assert len(logged) == 200 == sum(commits)
    first = logged[0]
    assert (first["model_version"], first["version_label"], first["complaint_id"]) == (
        3,
        "canary",
        "77",
    )
    assert json.loads(first["features"]) == {"product": "Mortgage", "complaint_id": "77"}
    assert json.loads(first["outputs"]) == {"dispute_probability": 0.25, "disputed": 0.0}
    assert first["dispute_probability"] == 0.25 and json.loads(first["unknown_features"]) == [
        "Product"
    ]
    with sqlite3.connect(log.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_concurrent_entries_share_commits(tmp_path):
    commits = []
    log = RequestLog(str(tmp_path), on_commit=lambda n, s: commits.append(n))
    pending = [log.append(entry(f"r{i}", product="x")) for i in range(500)]
    for future in pending:
        future.result(10)
    log.close()
    assert sum(commits) == 500 and len(commits) < 500  # several entries per transaction


def test_log_features_none_and_no_text_keep_no_narrative(tmp_path):
    values = {
        "product": "Mortgage",
        "complaint_id": "9",
        "consumer_complaint_narrative": "my story",
    }
    for setting, expected in {
        "no_text": {"product": "Mortgage", "complaint_id": "9"},
        "none": {"complaint_id": "9"},
    }.items():
        log = RequestLog(str(tmp_path / setting), log_features=setting)
        log.append(entry("r", **values)).result(5)
        log.close()
        (logged,) = rows(log.path)
        assert json.loads(logged["features"]) == expected
        assert logged["complaint_id"] == "9"
        with open(log.path, "rb") as handle:
            assert b"my story" not in handle.read()


def test_the_log_is_rotated_and_bounded(tmp_path):
    log = RequestLog(str(tmp_path), max_bytes=64 * 1024, keep=2)
    narrative = "x" * 2000
    for i in range(300):
        log.append(entry(f"r{i}", consumer_complaint_narrative=narrative)).result(5)
    log.close()
    files = sorted(os.listdir(tmp_path))
    rotated = [f for f in files if f.startswith("requests-") and f.endswith(".sqlite")]
    assert len(rotated) == 2 and "requests.sqlite" in files
    total = sum(os.path.getsize(tmp_path / f) for f in files)
    assert total < 4 * 64 * 1024 + 3 * 8192
    ids = [r["request_id"] for f in [*rotated, "requests.sqlite"] for r in rows(str(tmp_path / f))]
    assert (
        ids == sorted(ids, key=lambda r: int(r[1:])) and ids[-1] == "r299"
    )  # newest kept, in order
