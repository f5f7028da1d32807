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


def test_profile_samples_go_to_their_component_and_first_matching_phase(tmp_path):
    import profile_components

    raw = tmp_path / "profile.txt"
    transform = "run (tfx/components/transform/executor.py:10)"
    raw.write_text(
        f"main (x.py:1);{transform};gen (tensorflow_data_validation/api.py:3) 30\n"
        f"main (x.py:1);{transform};trace (tensorflow/python/framework/func_graph.py:9) 20\n"
        "<module> (runners/beam_runner.py:1);load (tensorflow/__init__.py:1) 7\n"
        "not a sample line\n"
    )
    by_component, outside = profile_components.summarize(raw)
    assert by_component["Transform"] == {"TFDV statistics": 30, "graph tracing": 20}
    assert sum(by_component["Evaluator"].values()) == 0
    assert outside == {"imports": 7}
