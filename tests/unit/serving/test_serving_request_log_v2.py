"""Request log format 2: each row names its arm, why it went there, and whether it was a shadow;
a format 1 file is rotated away at start and stays readable."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import bundled_rows

from serving import request_log
from serving.request_log import Entry, RequestLog

# The predictions table as format 1 wrote it (before the rollout columns).
V1_SCHEMA = """
CREATE TABLE predictions (
    id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, instance INTEGER NOT NULL,
    received_at TEXT NOT NULL, model_name TEXT NOT NULL, model_version INTEGER NOT NULL,
    version_label TEXT, protocol TEXT NOT NULL, signature_name TEXT NOT NULL, complaint_id TEXT,
    features TEXT NOT NULL, unknown_features TEXT, dispute_probability REAL,
    outputs TEXT NOT NULL, latency_ms REAL NOT NULL
);
CREATE TABLE log_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def entry(request_id: str, rows: list[dict], **rollout) -> Entry:
    examples = [
        {k: ("bytes", [row[k].encode()]) for k in ("product", "complaint_id")} for row in rows
    ]
    return Entry(
        request_id=request_id,
        received=time.time(),
        model_name="cfpb",
        version=rollout.pop("version", 1),
        label=rollout.pop("label", None),
        protocol="rest",
        signature="serving_default",
        examples=examples,
        known={"product", "complaint_id"},
        unknown=[],
        outputs={"dispute_probability": np.linspace(0.1, 0.2, len(rows), dtype=np.float32)},
        latency_ms=2.0,
        **rollout,
    )


def logged(path) -> list[tuple]:
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT request_id, instance, complaint_id, model_version, version_label, arm, "
            "assignment, shadow FROM predictions ORDER BY id"
        ).fetchall()


def write_v1(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / request_log.FILE_NAME
    with sqlite3.connect(path) as connection:
        connection.executescript(V1_SCHEMA)
        connection.executemany(
            "INSERT INTO log_info VALUES (?, ?)",
            [("format", "cfpb-request-log/1"), ("log_features", "all")],
        )
        connection.executemany(
            "INSERT INTO predictions (request_id, instance, received_at, model_name, "
            "model_version, version_label, protocol, signature_name, complaint_id, features, "
            "outputs, latency_ms) VALUES (?, 0, '2026-11-25T00:00:00.000Z', 'cfpb', 1, ?, "
            "'rest', 'serving_default', ?, '{}', '{}', 1.0)",
            [(f"old-{i}", "stable" if i % 2 else None, row["complaint_id"]) for i, row in
             enumerate(rows)],
        )  # fmt: skip
    return path


def test_rows_name_the_arm_the_assignment_and_the_shadow(tmp_path):
    assert request_log.FORMAT == "cfpb-request-log/2"
    assert request_log.READABLE_FORMATS == ("cfpb-request-log/1", "cfpb-request-log/2")
    assert request_log.COLUMNS[-3:] == ("arm", "assignment", "shadow")
    sample = bundled_rows(every=500)[:3]
    log = RequestLog(str(tmp_path))
    log.append(entry("split", sample[:2], version=2, arm="canary", assignment="split")).result(5)
    log.append(entry("split", sample[:2], version=3, arm="candidate", assignment="shadow",
                     shadow=True)).result(5)  # fmt: skip
    log.append(entry("named", sample[2:], label="stable", arm="stable", assignment="explicit"))
    log.append(entry("old-caller", sample[2:])).result(5)  # a v1-style Entry: defaults
    log.close()
    ids = [row["complaint_id"] for row in sample]
    assert logged(log.path) == [
        ("split", 0, ids[0], 2, None, "canary", "split", 0),
        ("split", 1, ids[1], 2, None, "canary", "split", 0),
        ("split", 0, ids[0], 3, None, "candidate", "shadow", 1),
        ("split", 1, ids[1], 3, None, "candidate", "shadow", 1),
        ("named", 0, ids[2], 1, "stable", "stable", "explicit", 0),
        ("old-caller", 0, ids[2], 1, None, None, "default", 0),
    ]
    with sqlite3.connect(log.path) as connection:
        info = dict(connection.execute("SELECT key, value FROM log_info"))
        columns = {row[1]: row[2:4] for row in connection.execute("PRAGMA table_info(predictions)")}
    assert info["format"] == "cfpb-request-log/2"
    assert columns["arm"] == ("TEXT", 0)
    assert columns["assignment"] == ("TEXT", 1) and columns["shadow"] == ("INTEGER", 1)


def test_a_v1_file_is_rotated_away_at_start_and_stays_readable(tmp_path):
    sample = bundled_rows(every=1000)[:4]
    write_v1(tmp_path, sample)
    log = RequestLog(str(tmp_path))
    log.append(entry("new", sample[:1], arm="stable", assignment="split")).result(5)
    log.close()
    files = request_log.log_files(tmp_path)
    assert [path.name for path in files][-1] == "requests.sqlite" and len(files) == 2
    rotated, current = files
    assert rotated.name.startswith("requests-")
    assert [request_log.file_format(path) for path in files] == [
        "cfpb-request-log/1",
        "cfpb-request-log/2",
    ]
    assert [row[0] for row in logged(current)] == ["new"]  # one file never mixes formats
    # Format 1 rows read with the rollout columns a reader expects: arm = label, no shadow.
    with sqlite3.connect(rotated) as connection:
        old = connection.execute(
            f"SELECT request_id, {request_log.rollout_columns('cfpb-request-log/1')} "
            "FROM predictions ORDER BY id"
        ).fetchall()
    assert old == [
        ("old-0", None, "default", 0),
        ("old-1", "stable", "explicit", 0),
        ("old-2", None, "default", 0),
        ("old-3", "stable", "explicit", 0),
    ]
    with sqlite3.connect(current) as connection:
        new = connection.execute(
            f"SELECT {request_log.rollout_columns(request_log.FORMAT)} FROM predictions"
        ).fetchall()
    assert new == [("stable", "split", 0)]


def test_files_that_are_not_a_readable_log_are_one_line(tmp_path):
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.executescript(V1_SCHEMA)
        connection.execute("INSERT INTO log_info VALUES ('format', 'cfpb-request-log/9')")
    with pytest.raises(ValueError) as raised:
        request_log.file_format(other)
    assert str(raised.value) == (
        f"{other} is a request log of format 'cfpb-request-log/9'; this version reads "
        "cfpb-request-log/1, cfpb-request-log/2"
    )
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database, just notes " * 100)
    with pytest.raises(ValueError) as raised:
        request_log.file_format(text)
    assert str(raised.value) == (f"{text} is not a readable request log (file is not a database)")
