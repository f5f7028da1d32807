"""The monitor reads request logs of both formats, and by default judges the version that
answered, not a shadow that only scored copies."""

from __future__ import annotations

import sqlite3

from abtest_logs import ab_traffic, write_log
from conftest import bundled_rows

from monitoring import window


def as_format_1(log_file) -> None:
    """The file as a server before the rollout wrote it."""
    with sqlite3.connect(log_file) as connection:
        for column in ("arm", "assignment", "shadow"):
            connection.execute(f"ALTER TABLE predictions DROP COLUMN {column}")
        connection.execute("UPDATE log_info SET value = 'cfpb-request-log/1' WHERE key = 'format'")


def test_both_formats_are_read_together(tmp_path):
    rows = bundled_rows(every=100)
    log = write_log(tmp_path / "log", ab_traffic(rows[:20], shadow=False), start=1e9)
    as_format_1(log / "requests.sqlite")
    (log / "requests.sqlite").rename(log / "requests-20010101T000000000000Z.sqlite")
    write_log(log, ab_traffic(rows[20:40], shadow=True), start=1.1e9)
    found, _, total = window.read_window(window.log_files(log), "2000", "3000", None)
    assert total == 60 and len(found) == 60
    assert sum(row[window.SHADOW] for row in found) == 20


def test_the_default_version_is_the_newest_served_one_not_a_shadow(tmp_path):
    log = write_log(tmp_path / "log", ab_traffic(bundled_rows(every=100)[:30], shadow=True))
    found, _, _ = window.read_window(window.log_files(log), "2000", "3000", None)
    assert found[0][window.SHADOW] == 1  # the newest row is the canary's shadow copy
    name, version, chosen, others = window.select_model(found, None, None)
    assert (name, version, len(chosen), others) == ("cfpb", 1, 30, {"cfpb version 2": 30})
