"""feedback.join refuses rows that would poison a span: requests without any of the model's
features, and complaint ids that data.prepare would drop as malformed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import bundled_rows, write_rows
from test_feedback import log_requests, outcomes_file, raw_export, run, span_rows

from data import normalize, prepare, spans
from data.seen_ids import SeenIds
from models import features
from serving.request_log import Entry, RequestLog

MALFORMED_REASON = "malformed row (Complaint ID not a number)"  # data.prepare's count


def with_ids(count: int) -> list[dict]:
    rows = [r for r in bundled_rows(every=50) if r[features.ID_KEY]][:count]
    assert len(rows) == count
    return rows


def as_sent(row: dict) -> dict:
    """A request instance in the model's own feature names."""
    return {k: row[k] for k in features.RAW_FEATURE_KEYS}


def in_cfpb_names(row: dict) -> dict:
    """The mistake of the brief: the CFPB export's column names, with the complaint id."""
    return {features.ID_KEY: row[features.ID_KEY], "Product": row["product"], "Company": "WF"}


def log_instances(directory: Path, instances: list[dict], log_features: str = "all") -> Path:
    """Instances logged as the server logs them: values of the features the model reads kept,
    other names only listed (a log of a server that did not yet refuse such instances)."""
    log = RequestLog(str(directory), log_features=log_features)
    known = set(features.RAW_FEATURE_KEYS)
    for number, instance in enumerate(instances):
        log.append(
            Entry(
                request_id=f"r{number}",
                received=time.time(),
                model_name="cfpb",
                version=1,
                label=None,
                protocol="rest",
                signature="serving_default",
                examples=[{k: ("bytes", [str(v).encode()]) for k, v in instance.items()}],
                known=known,
                unknown=sorted(set(instance) - known),
                outputs={features.PREDICTION_KEY: np.array([0.2], np.float32)},
                latency_ms=1.0,
            )
        ).result()
    log.close()
    return directory


def manifest_of(tmp_path: Path, span: int = 1) -> dict:
    folder = tmp_path / "data" / f"span-{span}"
    return json.loads((folder / spans.FEEDBACK_MANIFEST).read_text())


def written_spans(tmp_path: Path) -> list[str]:
    data = tmp_path / "data"
    return sorted(p.name for p in data.iterdir() if p.name.startswith("span-"))


def test_requests_without_model_features_are_left_out_counted_and_named(tmp_path, capsys):
    rows = with_ids(27)
    ordinary, featureless = rows[:5], rows[5:]  # 22 sent in the CFPB export's names
    log_instances(
        tmp_path / "log", [as_sent(r) for r in ordinary] + [in_cfpb_names(r) for r in featureless]
    )
    outcomes = outcomes_file(rows, tmp_path / "o.csv")
    assert run(tmp_path, tmp_path / "log", outcomes) == 0
    out = capsys.readouterr().out
    written = span_rows(tmp_path / "data" / "span-1")
    assert [r[features.ID_KEY] for r in written] == [r[features.ID_KEY] for r in ordinary]
    assert all(any(r[k] for k in features.MODEL_INPUT_KEYS) for r in written)
    manifest = manifest_of(tmp_path)
    counts = manifest["counts"]
    assert (counts["joined"], counts["without_model_features"]) == (5, 22)
    assert counts["outcomes_without_request"] == 0  # they had a request, just not a usable one
    named = manifest["refused"]["without_model_features"]
    assert named == {
        "total": 22,
        "complaint_ids": [r[features.ID_KEY] for r in featureless[:20]],
    }
    assert "without model features: 22" in out
    first, *_ = [line for line in out.splitlines() if line.startswith("left out 22 requests")]
    assert featureless[0][features.ID_KEY] in first and first.endswith(" and 2 more")
    # A rerun: the usable rows are in span-1, the featureless ones stay refused; nothing new.
    assert run(tmp_path, tmp_path / "log", outcomes) == 0
    out = capsys.readouterr().out
    assert "nothing new to write" in out and "without model features: 22" in out
    assert written_spans(tmp_path) == ["span-1"]


@pytest.mark.parametrize("kept", ["all", "none"])
def test_a_run_whose_joined_rows_are_all_featureless_writes_nothing_and_exits_2(
    tmp_path, capsys, kept
):
    rows = with_ids(3)
    if kept == "all":  # the model's features were sent under the CFPB's names
        log_instances(tmp_path / "log", [in_cfpb_names(r) for r in rows])
    else:  # the log kept only ids, and the outcomes file has no feature columns to add
        log_requests(tmp_path / "log", rows, log_features="none")
    assert run(tmp_path, tmp_path / "log", outcomes_file(rows, tmp_path / "o.csv")) == 2
    captured = capsys.readouterr()
    ids = ", ".join(r[features.ID_KEY] for r in rows)
    assert captured.err == (
        "error: none of the 3 requests with an outcome has a value for any feature the model "
        f"reads (complaint ids {ids}): they were sent under other names (e.g. the CFPB "
        "export's) or logged without them; no span written\n"
    )
    assert "without model features: 3" in captured.out
    assert not (tmp_path / "data").exists() or written_spans(tmp_path) == []


def test_malformed_complaint_ids_are_refused_in_the_log_and_in_the_outcomes(tmp_path, capsys):
    rows = with_ids(5)
    good, bad = rows[:3], [{**rows[3], features.ID_KEY: "abc"}, {**rows[4], features.ID_KEY: "12a"}]
    blank = {**rows[0], features.ID_KEY: "  "}  # no id at all, as data.prepare sees it
    log_requests(tmp_path / "log", good + bad + [blank])
    outcomes = outcomes_file(good + bad, tmp_path / "o.csv")  # a prepared CSV with the same ids
    assert run(tmp_path, tmp_path / "log", outcomes) == 0
    out = capsys.readouterr().out
    assert [r[features.ID_KEY] for r in span_rows(tmp_path / "data" / "span-1")] == [
        r[features.ID_KEY] for r in good
    ]
    manifest = manifest_of(tmp_path)
    assert manifest["counts"]["malformed_complaint_id"] == 2
    assert manifest["counts"]["waiting_for_outcome"] == 0  # never joinable, so not waiting
    assert manifest["counts"]["without_complaint_id"] == 1
    # Every logged request is counted once.
    assert sum(v for k, v in manifest["counts"].items() if k != "outcomes_without_request") == 6
    assert manifest["refused"]["malformed_complaint_id"] == {
        "total": 2,
        "complaint_ids": ["abc", "12a"],
    }
    assert manifest["outcomes"]["malformed_complaint_id"] == {
        "total": 2,
        "complaint_ids": ["abc", "12a"],
    }
    assert "malformed complaint id: 2" in out and "left out 2 requests" in out
    assert "ignored 2 outcome rows with a malformed complaint id: abc, 12a" in out


def test_a_malformed_id_in_a_raw_export_is_counted_as_data_prepare_counts_it(tmp_path):
    rows = with_ids(2)
    log_requests(tmp_path / "log", [rows[0], {**rows[1], features.ID_KEY: "abc"}])
    export = raw_export(
        tmp_path / "export.csv",
        [(rows[0][features.ID_KEY], "2016-03-03", "Yes"), ("abc", "2016-03-04", "No")],
    )
    assert run(tmp_path, tmp_path / "log", export) == 0
    assert [r[features.ID_KEY] for r in span_rows(tmp_path / "data" / "span-1")] == [
        rows[0][features.ID_KEY]
    ]
    manifest = manifest_of(tmp_path)
    assert manifest["outcomes"]["unreadable"] == {MALFORMED_REASON: 1}
    assert manifest["counts"]["malformed_complaint_id"] == 1


def test_a_log_whose_every_complaint_id_is_malformed_exits_2(tmp_path, capsys):
    rows = with_ids(2)
    log_requests(tmp_path / "log", [{**r, features.ID_KEY: f"x{n}"} for n, r in enumerate(rows)])
    assert run(tmp_path, tmp_path / "log", outcomes_file(rows, tmp_path / "o.csv")) == 2
    assert capsys.readouterr().err == (
        "error: every complaint id in the request log is malformed (2 requests: x0, x1), "
        "so none can be joined; send the CFPB's numeric Complaint ID; no span written\n"
    )


def test_outcomes_with_only_malformed_ids_are_bad_input(tmp_path, capsys):
    log_requests(tmp_path / "log", with_ids(1))
    bad = write_rows([{features.ID_KEY: "n/a", features.LABEL_KEY: "1"}], tmp_path / "o.csv")
    assert run(tmp_path, tmp_path / "log", bad) == 2
    err = capsys.readouterr().err
    assert "no row has both a complaint id and an outcome" in err and "1 malformed" in err
    assert len(err.splitlines()) == 1


IDS = ["abc", "12a", "-3", "1e3", "4.50", "\uff11\uff12", "12.0", " 7 ", "00042", "5.000", ""]


def test_feedback_and_data_prepare_share_one_rule_for_a_well_formed_id(tmp_path):
    export = raw_export(tmp_path / "export.csv", [(i, "2016-03-03", "Yes") for i in IDS])
    report = prepare.PrepareReport()
    kept = [row[features.ID_KEY] for row in prepare.canonical_rows(export, report, SeenIds())]
    malformed = [i for i in IDS if normalize.malformed_id(i)]
    assert malformed == IDS[:6]  # a number, maybe with ".0" and spaces, or nothing, is fine
    assert report.dropped[MALFORMED_REASON] == len(malformed)
    assert kept == ["12", "7", "00042", "5", ""]
    assert [spans.normalize_id(i) for i in IDS[6:]] == [spans.normalize_id(i) for i in kept]
