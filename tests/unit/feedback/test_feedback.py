"""join.join: logged requests joined with later outcomes become the next span, once."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_EXPORTS, bundled_rows, write_rows

from data import prepare, spans
from feedback import join
from models import features
from serving.request_log import Entry, RequestLog


def log_requests(
    directory: Path, rows: list[dict], with_ids: bool = True, log_features: str = "all"
) -> Path:
    """Rows sent to the server as feature objects, logged by the server's own writer."""
    log = RequestLog(str(directory), log_features=log_features)
    for number, row in enumerate(rows):
        sent = {
            k: ("bytes", [v.encode()]) for k, v in row.items() if k in features.RAW_FEATURE_KEYS
        }
        if not with_ids:
            sent.pop(features.ID_KEY)
        log.append(
            Entry(
                request_id=f"r{number}",
                received=time.time(),
                model_name="cfpb",
                version=1,
                label=None,
                protocol="rest",
                signature="serving_default",
                examples=[sent],
                known=None,
                unknown=[],
                outputs={features.PREDICTION_KEY: np.array([0.2], np.float32)},
                latency_ms=1.0,
            )
        ).result()
    log.close()
    return directory


def outcomes_file(rows: list[dict], path: Path) -> Path:
    return write_rows(
        [
            {features.ID_KEY: r[features.ID_KEY], features.LABEL_KEY: r[features.LABEL_KEY]}
            for r in rows
        ],
        path,
    )


def span_rows(folder: Path) -> list[dict]:
    with open(folder / spans.SPAN_CSV, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run(tmp_path: Path, log: Path, outcomes: Path, *extra: str) -> int:
    return join.main(
        [
            "--request-log",
            str(log),
            "--outcomes",
            str(outcomes),
            "--data-dir",
            str(tmp_path / "data"),
            *extra,
        ]
    )


@pytest.fixture
def served(tmp_path) -> list[dict]:
    """40 real complaints with ids, served once each."""
    rows = [r for r in bundled_rows(every=50) if r[features.ID_KEY]][:40]
    log_requests(tmp_path / "log", rows)
    return rows


def test_joined_requests_become_one_span_and_a_rerun_is_a_no_op(tmp_path, served, capsys):
    known_now = served[:30]  # the last 10 complaints have no outcome yet
    outcomes = outcomes_file(known_now, tmp_path / "outcomes.csv")
    assert run(tmp_path, tmp_path / "log", outcomes) == 0
    folder = tmp_path / "data" / "span-1"
    written = span_rows(folder)
    assert [r[features.ID_KEY] for r in written] == [r[features.ID_KEY] for r in known_now]
    # Features as served, labels from the outcomes, in the canonical columns.
    assert written == [{k: r[k] for k in features.CANONICAL_COLUMNS} for r in known_now]
    manifest = json.loads((folder / spans.FEEDBACK_MANIFEST).read_text())
    assert manifest["outcomes"]["sha256"] == spans.sha256_of(outcomes)
    (log_file,) = manifest["request_log"]["files"]
    assert (log_file["first_row"], log_file["last_row"], log_file["requests"]) == (1, 40, 40)
    assert manifest["counts"]["joined"] == 30 and manifest["counts"]["waiting_for_outcome"] == 10

    assert run(tmp_path, tmp_path / "log", outcomes) == 0  # the same log and outcomes again
    assert "nothing new to write" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "data").iterdir() if not p.name.startswith(".")) == [
        "span-1"
    ]

    # The waiting requests join when their outcomes arrive, in the next span, alone.
    later = outcomes_file(served, tmp_path / "later.csv")
    assert run(tmp_path, tmp_path / "log", later) == 0
    assert [r[features.ID_KEY] for r in span_rows(tmp_path / "data" / "span-2")] == [
        r[features.ID_KEY] for r in served[30:]
    ]


def test_a_complaint_asked_twice_is_written_once_with_its_latest_request(tmp_path):
    row = next(r for r in bundled_rows(every=50) if r[features.ID_KEY])
    changed = {**row, "product": "Mortgage", "state": "ZZ"}
    log_requests(tmp_path / "log", [row, changed])
    assert run(tmp_path, tmp_path / "log", outcomes_file([row], tmp_path / "o.csv")) == 0
    (written,) = span_rows(tmp_path / "data" / "span-1")
    assert (written["product"], written["state"]) == ("Mortgage", "ZZ")
    manifest = json.loads((tmp_path / "data" / "span-1" / spans.FEEDBACK_MANIFEST).read_text())
    assert manifest["counts"]["duplicate_requests"] == 1


def test_a_log_kept_without_features_takes_them_from_full_outcomes(tmp_path):
    rows = [r for r in bundled_rows(every=50) if r[features.ID_KEY]][:5]
    log_requests(tmp_path / "log", rows, log_features="none")  # only complaint_id is kept
    full = write_rows(rows, tmp_path / "prepared.csv")  # a prepared CSV: every column
    assert run(tmp_path, tmp_path / "log", full) == 0
    assert span_rows(tmp_path / "data" / "span-1") == [
        {k: r[k] for k in features.CANONICAL_COLUMNS} for r in rows
    ]


def test_requests_without_complaint_id_are_counted_and_left_in_the_log(tmp_path, served, capsys):
    log_requests(tmp_path / "anonymous", served[:5], with_ids=False)
    outcomes = outcomes_file(served, tmp_path / "o.csv")
    assert run(tmp_path, tmp_path / "anonymous", outcomes) == 0
    assert "without complaint id: 5" in capsys.readouterr().out
    assert not (tmp_path / "data" / "span-1").exists()


def test_outcomes_from_a_raw_cfpb_export_are_prepared_first(tmp_path):
    export = next(p for p in FIXTURE_EXPORTS if "sample" in p.name)  # a nameless index column
    prepare.prepare_cfpb_exports([export], tmp_path / "prepared.csv")
    with open(tmp_path / "prepared.csv", newline="", encoding="utf-8") as handle:
        labelled = [r for r in csv.DictReader(handle) if r[features.ID_KEY]][:5]
    log_requests(tmp_path / "log", labelled)
    assert run(tmp_path, tmp_path / "log", export) == 0
    written = span_rows(tmp_path / "data" / "span-1")
    assert [(r[features.ID_KEY], r[features.LABEL_KEY]) for r in written] == [
        (r[features.ID_KEY], r[features.LABEL_KEY]) for r in labelled
    ]
    manifest = json.loads((tmp_path / "data" / "span-1" / spans.FEEDBACK_MANIFEST).read_text())
    assert manifest["outcomes"]["kind"] == "cfpb-export"


def contradicting_file(tmp_path, served) -> Path:
    first = {features.ID_KEY: served[0][features.ID_KEY], features.LABEL_KEY: "1"}
    return write_rows([first, {**first, features.LABEL_KEY: "0"}], tmp_path / "bad.csv")


def test_contradicting_outcomes_stop_the_run(tmp_path, served, capsys):
    assert run(tmp_path, tmp_path / "log", contradicting_file(tmp_path, served)) == 2
    assert "does not pick one" in capsys.readouterr().err
    # Against a span already written: the span's label is not overwritten.
    assert run(tmp_path, tmp_path / "log", outcomes_file(served, tmp_path / "o.csv")) == 0
    flipped = [{**r, features.LABEL_KEY: str(1 - int(r[features.LABEL_KEY]))} for r in served[:1]]
    assert run(tmp_path, tmp_path / "log", outcomes_file(flipped, tmp_path / "flip.csv")) == 2
    assert "does not overwrite a span's label" in capsys.readouterr().err
    assert not (tmp_path / "data" / "span-2").exists()


def damaged_copy(tmp_path: Path) -> Path:
    log = tmp_path / "log" / "requests.sqlite"
    half = tmp_path / "half" / "requests.sqlite"
    half.parent.mkdir()
    data = log.read_bytes()
    half.write_bytes(data[: len(data) // 2])  # a copy cut short
    return half.parent


def garbage_log(tmp_path: Path) -> Path:
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "requests.sqlite").write_bytes(b"not a database at all" * 100)
    return tmp_path / "garbage"


def empty_log(tmp_path: Path) -> Path:
    RequestLog(str(tmp_path / "empty")).close()
    return tmp_path / "empty"


@pytest.mark.parametrize(
    "make_log, make_outcomes, extra, message",
    [
        (lambda t: t / "missing", None, [], "does not exist"),
        (lambda t: t, None, [], "no request log in"),
        (empty_log, None, [], "holds no requests"),
        (garbage_log, None, [], "cannot be read"),
        (damaged_copy, None, [], "No span written"),
        (None, lambda t: write_rows([{"id": "1", "y": "1"}], t / "o.csv"), [], "the header needs"),
        (
            None,
            lambda t: write_rows([{features.ID_KEY: "", features.LABEL_KEY: "1"}], t / "o.csv"),
            [],
            "no row has a complaint id",
        ),
        (
            None,
            lambda t: write_rows(
                [{features.ID_KEY: "5", features.LABEL_KEY: "maybe"}], t / "o.csv"
            ),
            [],
            "use 1 or 0",
        ),
        (None, None, ["--data-dir", "/proc/cfpb-data"], "cannot write to data dir"),
    ],
)
def test_bad_input_gets_one_line_and_writes_nothing(
    tmp_path, served, capsys, make_log, make_outcomes, extra, message
):
    log = make_log(tmp_path) if make_log else tmp_path / "log"
    outcomes = (
        make_outcomes(tmp_path) if make_outcomes else outcomes_file(served, tmp_path / "o.csv")
    )
    assert run(tmp_path, log, outcomes, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    data = tmp_path / "data"
    assert not data.exists() or not [p for p in data.iterdir() if p.name != join.LOCK_FILE]


def test_an_existing_span_is_never_rewritten(tmp_path, served, capsys):
    existing = write_rows(served[:1], tmp_path / "data" / "span-3" / "complaints.csv")
    before = existing.read_bytes()
    assert (
        run(tmp_path, tmp_path / "log", outcomes_file(served, tmp_path / "o.csv"), "--span", "3")
        == 2
    )
    assert "already exists" in capsys.readouterr().err
    assert existing.read_bytes() == before
    # Without --span the next number is taken, and span-3's complaint is not written again.
    assert run(tmp_path, tmp_path / "log", outcomes_file(served, tmp_path / "o.csv")) == 0
    assert len(span_rows(tmp_path / "data" / "span-4")) == len(served) - 1
    shutil.rmtree(tmp_path / "data")


def test_ids_spelled_differently_in_log_outcomes_and_spans_are_one_complaint(tmp_path, capsys):
    rows = [r for r in bundled_rows(every=50) if r[features.ID_KEY]][:3]
    spelled = [" 1234", "5678.0", "0042"]
    log_requests(
        tmp_path / "log", [{**r, features.ID_KEY: i} for r, i in zip(rows, spelled, strict=True)]
    )
    outcomes = outcomes_file(
        [{**r, features.ID_KEY: i} for r, i in zip(rows, ["1234", "5678", "42"], strict=True)],
        tmp_path / "o.csv",
    )
    assert run(tmp_path, tmp_path / "log", outcomes) == 0
    written = span_rows(tmp_path / "data" / "span-1")
    assert [r[features.ID_KEY] for r in written] == ["1234", "5678", "42"]
    # A span saved by a spreadsheet (BOM, "42.0") still holds complaint 42: not written again,
    # and a different outcome for it is a contradiction.
    span = tmp_path / "data" / "span-1" / spans.SPAN_CSV
    text = span.read_text(encoding="utf-8").replace("\n42,", "\n42.0,")
    span.write_text("\ufeff" + text, encoding="utf-8")
    flipped = {
        features.ID_KEY: "42",
        features.LABEL_KEY: str(1 - int(written[2]["consumer_disputed"])),
    }
    assert run(tmp_path, tmp_path / "log", write_rows([flipped], tmp_path / "f.csv")) == 2
    assert "does not overwrite a span's label" in capsys.readouterr().err


def raw_export(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A CFPB export's header and rows (complaint id, date, disputed?)."""
    header = [*prepare.REQUIRED_CFPB_COLUMNS, "Complaint ID"]
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for complaint_id, date, disputed in rows:
            values = {"Date received": date, "Consumer disputed?": disputed}
            values["Complaint ID"] = complaint_id
            writer.writerow([values.get(name, "x") for name in header])
    return path


def test_a_raw_export_that_contradicts_itself_stops_the_run(tmp_path, served, capsys):
    complaint = served[0][features.ID_KEY]
    export = raw_export(
        tmp_path / "export.csv", [(complaint, "2016-03-03", "Yes"), (complaint, "2016-03-04", "No")]
    )
    assert run(tmp_path, tmp_path / "log", export) == 2
    assert "does not pick one" in capsys.readouterr().err
    assert not (tmp_path / "data" / "span-1").exists()


def test_a_nul_in_a_logged_narrative_does_not_block_the_loop(tmp_path):
    row = next(r for r in bundled_rows(every=50) if r[features.ID_KEY])
    log_requests(tmp_path / "log", [{**row, features.TEXT_KEY: "before\x00after"}])
    assert run(tmp_path, tmp_path / "log", outcomes_file([row], tmp_path / "o.csv")) == 0
    (written,) = span_rows(tmp_path / "data" / "span-1")
    assert written[features.TEXT_KEY] == "beforeafter"


def latin1_after_the_head(tmp_path: Path) -> Path:
    rows = [{features.ID_KEY: str(i), features.LABEL_KEY: "1"} for i in range(2000)]
    path = write_rows(rows, tmp_path / "o.csv")
    path.write_bytes(path.read_bytes() + b"99,caf\xe9\n")  # not UTF-8, past the 8 KB head
    return path


@pytest.mark.parametrize(
    "make_outcomes, extra, message",
    [
        (latin1_after_the_head, [], "cannot be read"),
        (None, ["--data-dir", "gs://bucket/data"], "write spans to a local folder"),
    ],
)
def test_more_bad_input_gets_one_line(tmp_path, served, capsys, make_outcomes, extra, message):
    outcomes = (
        make_outcomes(tmp_path) if make_outcomes else outcomes_file(served, tmp_path / "o.csv")
    )
    assert run(tmp_path, tmp_path / "log", outcomes, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_span_zero_is_refused_by_its_flag(tmp_path, served, capsys):
    with pytest.raises(SystemExit) as stopped:
        run(tmp_path, tmp_path / "log", outcomes_file(served, tmp_path / "o.csv"), "--span", "0")
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(
        "argument --span: must be an integer from 1 to 1,000,000,000 (a span number), not 0"
    )
    assert not (tmp_path / "data").exists()


def test_a_span_older_than_the_newest_is_refused(tmp_path, served, capsys):
    write_rows(served[:1], tmp_path / "data" / "span-5" / "complaints.csv")
    assert (
        run(tmp_path, tmp_path / "log", outcomes_file(served, tmp_path / "o.csv"), "--span", "2")
        == 2
    )
    assert "would never read it" in capsys.readouterr().err
    assert sorted(spans.span_folders(tmp_path / "data")) == [5]
