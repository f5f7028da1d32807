"""The benchmarks' own logic (their measurements run outside the test suite)."""

from __future__ import annotations

import csv
import sys

from pipeline.config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))  # benchmarks are scripts
import common  # noqa: E402
import scaling  # noqa: E402


def test_replicated_data_keeps_rows_and_gets_fresh_ids(tmp_path):
    path, rows = scaling.replicate(3, tmp_path)
    with open(path, newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == rows
    original = records[: rows // 3]
    ids = [r["complaint_id"] for r in records if r["complaint_id"]]
    assert len(ids) == len(set(ids)) == 3 * sum(1 for r in original if r["complaint_id"])
    assert [r["consumer_complaint_narrative"] for r in records[rows // 3 : 2 * rows // 3]] == [
        r["consumer_complaint_narrative"] for r in original
    ]


def test_markdown_table():
    assert common.markdown_table(["a", "b"], [[1, "x"]]) == "| a | b |\n| --- | --- |\n| 1 | x |"
