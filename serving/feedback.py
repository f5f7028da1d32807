"""Turn served requests and their later outcomes into the next training span.

    python -m serving.feedback --request-log outputs/request_log --outcomes OUTCOMES.csv \\
        --data-dir DIR

Whether a consumer disputes the company's answer is known weeks after the complaint, so after
its prediction. This joins the requests the model server logged (serving/request_log.py) with
those outcomes by complaint_id and writes DIR/span-N/complaints.csv in the canonical columns,
with a manifest beside it: the log files and row ranges read, the outcomes file and its
SHA-256, and what was joined, left waiting and skipped. The pipeline reads it with
--input-pattern 'span-{SPAN}/*.csv'; ExampleGen records the manifest on its artifact.

A complaint already in a span is never written again, so a rerun is a no-op. Requests without
a complaint_id, or without an outcome yet, stay in the log for a later run. An outcome that
contradicts another (in the file, or in a span) stops the run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import fcntl
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from data import spans
from models import features
from pipeline.config import is_uri
from serving.feedback_sources import (
    FeedbackError,
    LogFile,
    Outcomes,
    log_files,
    logged_features_setting,
    open_log,
    read_outcomes,
)

LOCK_FILE = ".feedback.lock"
OUTCOME_FIELDS = (
    "path",
    "sha256",
    "kind",
    "rows",
    "without_complaint_id",
    "without_label",
    "unreadable",
)


@dataclass
class Counts:
    """Request rows by fate; every logged request is counted once."""

    joined: int = 0
    duplicate_requests: int = 0  # the same complaint asked again: its latest request is kept
    already_in_spans: int = 0
    waiting_for_outcome: int = 0
    without_complaint_id: int = 0
    outcomes_without_request: int = 0


@dataclass
class Result:
    span: int | None
    folder: Path | None
    counts: Counts
    log: list[LogFile] = field(default_factory=list)


def spanned_labels(data_dir: Path, outcomes: Outcomes) -> dict[str, str]:
    """Labels of complaints already in a span; an outcome that contradicts one stops the run."""
    known: dict[str, str] = {}
    for folder in spans.span_folders(data_dir).values():
        try:
            for complaint_id, label, where in spans.labelled_ids(folder):
                known[complaint_id] = label
                new = outcomes.labels.get(complaint_id)
                if new is not None and label != "" and features.integer_label(label) != new:
                    raise FeedbackError(
                        f"complaint {complaint_id} is in {where} with outcome {label}, but "
                        f"{outcomes.path} says {new}; feedback does not overwrite a span's label"
                    )
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise FeedbackError(f"span {folder} cannot be read ({error}); fix it first") from None
    return known


def _joinable(connection: sqlite3.Connection, outcomes: Outcomes, known: dict[str, str]) -> None:
    """Temp tables: `outcome` (ids with an outcome, not yet in a span) and `spanned`."""
    connection.execute("CREATE TEMP TABLE outcome (complaint_id TEXT PRIMARY KEY, label INTEGER)")
    connection.execute("CREATE TEMP TABLE spanned (complaint_id TEXT PRIMARY KEY)")
    connection.executemany(
        "INSERT INTO temp.outcome VALUES (?, ?)",
        ((cid, label) for cid, label in outcomes.labels.items() if cid not in known),
    )
    connection.executemany("INSERT INTO temp.spanned VALUES (?)", ((cid,) for cid in known))


def _log_id(value) -> str | None:
    """A logged complaint_id as spans and outcomes spell it (NULL stays NULL)."""
    return None if value is None else spans.normalize_id(str(value))


def read_requests(
    files: list[Path], outcomes: Outcomes, known: dict[str, str], counts: Counts
) -> tuple[dict[str, tuple], list[LogFile]]:
    """{complaint_id: (received_at, file, row, features JSON, model version)} of the latest
    request per complaint that has an outcome and is not in a span yet."""
    latest: dict[str, tuple] = {}
    extents = []
    for number, path in enumerate(files):
        if not path.exists():  # rotated away by the server since the folder was listed
            print(f"warning: {path} is gone (the server rotated its log)", file=sys.stderr)
            continue
        connection = open_log(path)
        connection.create_function("cid", 1, _log_id, deterministic=True)
        try:
            connection.execute("BEGIN")  # one snapshot: the extent and the rows agree
            extent = LogFile.read(connection, path)
            extents.append(extent)
            counts.without_complaint_id += extent.without_complaint_id
            _joinable(connection, outcomes, known)
            counts.already_in_spans += connection.execute(
                "SELECT COUNT(*) FROM predictions p JOIN temp.spanned s "
                "ON cid(p.complaint_id) = s.complaint_id"
            ).fetchone()[0]
            counts.waiting_for_outcome += connection.execute(
                "SELECT COUNT(*) FROM predictions WHERE complaint_id IS NOT NULL AND "
                "cid(complaint_id) NOT IN (SELECT complaint_id FROM temp.outcome) AND "
                "cid(complaint_id) NOT IN (SELECT complaint_id FROM temp.spanned)"
            ).fetchone()[0]
            rows = connection.execute(
                "SELECT o.complaint_id, received_at, id, features, model_version FROM "
                "predictions p JOIN temp.outcome o ON cid(p.complaint_id) = o.complaint_id "
                "ORDER BY id"
            )
            for complaint_id, received_at, row, logged, version in rows:
                request = (received_at, number, row, logged, version)
                earlier = latest.get(complaint_id)
                if earlier is not None:
                    counts.duplicate_requests += 1
                if earlier is None or request[:3] > earlier[:3]:
                    latest[complaint_id] = request
        finally:
            connection.close()
    if not any(extent.requests for extent in extents):
        raise FeedbackError(f"the request log ({', '.join(map(str, files))}) holds no requests")
    return latest, extents


def canonical_row(complaint_id: str, logged: str, outcomes: Outcomes) -> list:
    """A prepared-CSV row (CANONICAL_COLUMNS): each column as the server received it, else
    from the outcomes file when the log did not keep it, else ""; the label from the outcomes."""
    values = {**outcomes.features.get(complaint_id, {}), **orjson.loads(logged)}
    label = outcomes.labels[complaint_id]
    values[features.ID_KEY], values[features.LABEL_KEY] = complaint_id, label
    row = []
    for column in features.CANONICAL_COLUMNS:
        value = values.get(column, "")
        if isinstance(value, list):  # logged as a list only when several values were sent
            value = value[0] if value else ""
        row.append("" if value is None else str(value).replace("\x00", ""))  # csv refuses NUL
    return row


def _writable_problem(data_dir: Path) -> str | None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as error:
        return f"cannot write to data dir {data_dir} ({error.strerror}); choose a writable folder"
    return None


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """One feedback run per data folder at a time (two would pick the same span number)."""
    try:
        handle = open(data_dir / LOCK_FILE, "w")  # noqa: SIM115 (held for the whole block)
    except OSError as error:
        raise FeedbackError(f"cannot lock {data_dir / LOCK_FILE} ({error.strerror})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FeedbackError(
                f"another feedback run is writing to {data_dir}; wait for it"
            ) from None
        yield


def run_feedback(
    request_log: Path, outcomes_path: Path, data_dir: str | Path, span: int | None = None
) -> Result:
    if is_uri(str(data_dir)):  # before Path() turns gs://b into gs:/b, a local folder
        raise FeedbackError(f"--data-dir {data_dir}: write spans to a local folder, then copy it")
    data_dir = Path(data_dir)
    if span is not None and span < 1:
        raise FeedbackError(f"--span {span}: span numbers start at 1")
    files = log_files(request_log)
    # A log kept without some features (--log_features=no_text or none): take what it lacks
    # from the outcomes file when that has them (a full prepared CSV or a CFPB export).
    partial = any(logged_features_setting(path) != "all" for path in files)
    outcomes = read_outcomes(outcomes_path, keep_features=partial)
    problem = _writable_problem(data_dir)  # creates a missing data dir, once inputs are good
    if problem:
        raise FeedbackError(problem)
    with locked(data_dir):
        existing = spans.span_folders(data_dir)
        if span is not None and span in existing:
            raise FeedbackError(f"{existing[span]} already exists; feedback never rewrites a span")
        if span is not None and span < max(existing, default=0):
            raise FeedbackError(
                f"--span {span} is older than span-{max(existing)}: the pipeline would never "
                "read it; leave --span out to take the next number"
            )
        counts = Counts()
        known = spanned_labels(data_dir, outcomes)
        latest, extents = read_requests(files, outcomes, known, counts)
        counts.joined = len(latest)
        counts.outcomes_without_request = sum(
            1 for cid in outcomes.labels if cid not in known and cid not in latest
        )
        if not latest:
            return Result(None, None, counts, extents)
        span = span if span is not None else max(existing, default=0) + 1
        ordered = sorted(latest.items(), key=lambda item: item[1][:3])
        rows = [canonical_row(cid, req[3], outcomes) for cid, req in ordered]
        manifest = {
            "format": spans.FEEDBACK_FORMAT,
            "span": span,
            "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
            "request_log": {
                "files": [asdict(extent) for extent in extents],
                "joined_received_at": [ordered[0][1][0], ordered[-1][1][0]],
                "model_versions": sorted({req[4] for _, req in ordered}),
            },
            "features": "as served, missing columns from the outcomes file"
            if partial
            else "as served",
            "outcomes": {
                name: getattr(outcomes, name)
                for name in OUTCOME_FIELDS  # not the labels
            },
            "counts": asdict(counts),
        }
        if (data_dir / f"span-{span}").exists():
            raise FeedbackError(f"span-{span} appeared meanwhile; feedback never rewrites a span")
        folder = spans.write_span(data_dir, span, features.CANONICAL_COLUMNS, rows, manifest)
        return Result(span, folder, counts, extents)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.feedback",
        description=__doc__.split("\n\n", 2)[2].split("\n\n")[0].replace("\n", " "),
        epilog="Exit codes: 0 a span written, or nothing new to write (a rerun); 2 bad input "
        "(missing, empty or damaged log; outcomes without complaint ids or with contradicting "
        "labels; a data dir that cannot be written; --span that exists), with nothing written.",
    )
    parser.add_argument(
        "--request-log",
        type=Path,
        required=True,
        help="the server's request log "
        "folder (--request_log_dir, default outputs/request_log) or one .sqlite file",
    )
    parser.add_argument(
        "--outcomes",
        type=Path,
        required=True,
        help="outcomes: a prepared CSV (complaint_id, consumer_disputed 1/0) or a raw CFPB export",
    )
    parser.add_argument(
        "--data-dir",
        required=True,
        help="the pipeline's data folder "
        "of span-N folders; the new span goes to DIR/span-<newest+1>",
    )
    parser.add_argument("--span", type=int, help="write this span number instead (must not exist)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        result = run_feedback(args.request_log, args.outcomes, args.data_dir, args.span)
    except FeedbackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    counts = asdict(result.counts)
    print(", ".join(f"{name.replace('_', ' ')}: {value:,}" for name, value in counts.items()))
    if result.folder is None:
        print("nothing new to write: no request with an outcome that is not in a span already")
    else:
        print(
            f"wrote {result.folder} ({result.counts.joined:,} rows, manifest "
            f"{spans.FEEDBACK_MANIFEST}) in {time.perf_counter() - started:.1f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
