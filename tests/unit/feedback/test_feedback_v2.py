"""The feedback loop on logs of format cfpb-request-log/2: a shadow's copy is never trained on,
and a log of the older format stays readable."""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
from pathlib import Path

from conftest import bundled_rows

from data import spans
from feedback import join
from models import features

sys.path.insert(0, str(Path(__file__).parents[1] / "monitoring"))  # the v2 log writer
from abtest_logs import ab_traffic, outcomes_file, write_log  # noqa: E402


def run(tmp_path: Path, log: Path, outcomes: Path) -> int:
    return join.main(
        ["--request-log", str(log), "--outcomes", str(outcomes), "--data-dir", str(tmp_path / "d")]
    )


def test_shadow_copies_are_never_written_to_a_span(tmp_path, capsys):
    rows = [r for r in bundled_rows(every=20) if r[features.ID_KEY]][:60]
    # 60 complaints answered by stable, each also scored by the canary's shadow: 120 rows.
    log = write_log(tmp_path / "log", ab_traffic(rows, shadow=True))
    with sqlite3.connect(log / "requests.sqlite") as connection:
        assert connection.execute("SELECT COUNT(*), SUM(shadow) FROM predictions").fetchone() == (
            120,
            60,
        )
    assert run(tmp_path, log, outcomes_file(rows, tmp_path / "outcomes.csv")) == 0
    out = capsys.readouterr().out
    assert out.startswith("joined: 60, duplicate requests: 0,"), out
    folder = tmp_path / "d" / "span-1"
    with open(folder / spans.SPAN_CSV, newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 60 and len({r[features.ID_KEY] for r in written}) == 60
    manifest = json.loads((folder / spans.FEEDBACK_MANIFEST).read_text())
    assert manifest["request_log"]["model_versions"] == [1]  # the shadow's version 2: never
    assert manifest["request_log"]["files"][0]["requests"] == 60


def test_a_log_of_the_older_format_is_still_read(tmp_path, capsys):
    rows = [r for r in bundled_rows(every=20) if r[features.ID_KEY]][:30]
    log = write_log(tmp_path / "log", ab_traffic(rows, shadow=False))
    with sqlite3.connect(log / "requests.sqlite") as connection:  # as a /1 server wrote it
        for column in ("arm", "assignment", "shadow"):
            connection.execute(f"ALTER TABLE predictions DROP COLUMN {column}")
        connection.execute("UPDATE log_info SET value = 'cfpb-request-log/1' WHERE key = 'format'")
    assert run(tmp_path, log, outcomes_file(rows, tmp_path / "outcomes.csv")) == 0
    assert capsys.readouterr().out.startswith("joined: 30,")
