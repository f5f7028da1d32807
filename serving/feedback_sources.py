"""What the feedback loop joins: the model server's request log and a file of later outcomes.

Both are checked before anything is written: a log that is not the server's format, damaged
or empty, and an outcomes file without complaint ids or labels, each stop the run with one line.
"""

from __future__ import annotations

import csv
import hashlib
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from data import prepare
from data.checks import SNIFF_BYTES, ExportError, nul_problem
from models import features
from serving import request_log

RAW_ID, RAW_LABEL = "Complaint ID", "Consumer disputed?"  # a CFPB export's header names


class FeedbackError(ValueError):
    """Bad input: printed as one line, exit code 2, nothing written."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- the request log --------------------------------------------------------------------------


def log_files(location: Path) -> list[Path]:
    """The log's files, oldest first: rotated requests-<time>.sqlite, then requests.sqlite."""
    if not location.exists():
        raise FeedbackError(
            f"request log {location} does not exist (the server's --request_log_dir)"
        )
    if location.is_file():
        return [location]
    rotated = sorted(location.glob("requests-*.sqlite"))
    current = (
        [location / request_log.FILE_NAME] if (location / request_log.FILE_NAME).exists() else []
    )
    if not rotated + current:
        raise FeedbackError(f"no request log in {location}: expected {request_log.FILE_NAME}")
    return rotated + current


def open_log(path: Path) -> sqlite3.Connection:
    """A read-only connection to one log file, after checking its format and integrity."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        check = connection.execute("PRAGMA quick_check").fetchone()[0]
        info = dict(connection.execute("SELECT key, value FROM log_info").fetchall())
    except sqlite3.DatabaseError as error:
        raise FeedbackError(
            f"request log {path} cannot be read ({error}): a damaged or half-copied file? "
            "No span written"
        ) from None
    if check != "ok":
        raise FeedbackError(f"request log {path} is damaged ({check}). No span written")
    if info.get("format") != request_log.FORMAT:
        raise FeedbackError(
            f"{path} is not a request log of this server (format {info.get('format')!r}, "
            f"expected {request_log.FORMAT!r})"
        )
    return connection


@dataclass
class LogFile:
    """One log file's extent, for the manifest: which rows a span's requests came from."""

    path: str
    requests: int
    without_complaint_id: int
    first_row: int | None
    last_row: int | None
    first_received_at: str | None
    last_received_at: str | None
    log_features: str

    @classmethod
    def read(cls, connection: sqlite3.Connection, path: Path) -> LogFile:
        count, without, first, last, since, until = connection.execute(
            "SELECT COUNT(*), TOTAL(complaint_id IS NULL), MIN(id), MAX(id), MIN(received_at), "
            "MAX(received_at) FROM predictions"
        ).fetchone()
        mode = connection.execute(
            "SELECT value FROM log_info WHERE key = 'log_features'"
        ).fetchone()
        return cls(str(path.resolve()), count, int(without), first, last, since, until, mode[0])


def logged_features_setting(path: Path) -> str:
    """The server's --log_features when it wrote this file: all, no_text or none."""
    connection = open_log(path)
    try:
        row = connection.execute("SELECT value FROM log_info WHERE key = 'log_features'").fetchone()
    finally:
        connection.close()
    return row[0] if row else "all"


# --- the outcomes -----------------------------------------------------------------------------


@dataclass
class Outcomes:
    """Labels by complaint id, from a prepared CSV or a raw CFPB export."""

    path: str
    sha256: str
    kind: str  # "prepared" or "cfpb-export"
    rows: int = 0
    without_complaint_id: int = 0
    without_label: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    # Feature columns by complaint id, kept only when asked: for requests logged without them.
    features: dict[str, dict] = field(default_factory=dict)


def read_outcomes(path: Path, keep_features: bool = False) -> Outcomes:
    if not path.is_file():
        raise FeedbackError(f"outcomes file {path} does not exist or is not a file")
    with open(path, "rb") as handle:
        problem = nul_problem(handle.read(SNIFF_BYTES))
    if problem:
        raise FeedbackError(f"outcomes {path} {problem}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (UnicodeDecodeError, csv.Error) as error:
        raise FeedbackError(f"outcomes {path} is not a UTF-8 CSV ({error})") from None
    outcomes = Outcomes(str(path.resolve()), sha256_of(path), "prepared")
    if RAW_ID in header and RAW_LABEL in header:
        outcomes.kind = "cfpb-export"
        with tempfile.TemporaryDirectory() as scratch:
            prepared = Path(scratch) / "outcomes.csv"
            try:
                report = prepare.prepare_cfpb_exports([path], prepared)
            except ExportError as error:
                raise FeedbackError(f"outcomes {path}: {error}") from None
            outcomes.without_label = sum(report.dropped.values())
            _read_prepared(prepared, outcomes, path, keep_features)
        return outcomes
    if features.ID_KEY in header and features.LABEL_KEY in header:
        _read_prepared(path, outcomes, path, keep_features)
        return outcomes
    raise FeedbackError(
        f"outcomes {path}: the header needs {features.ID_KEY} and {features.LABEL_KEY} (a prepared "
        f"CSV) or {RAW_ID!r} and {RAW_LABEL!r} (a CFPB export); it has {', '.join(header[:8])}"
    )


def _read_prepared(path: Path, outcomes: Outcomes, origin: Path, keep_features: bool) -> None:
    where: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            outcomes.rows += 1
            complaint_id = prepare.normalize_complaint_id((row[features.ID_KEY] or "").strip())
            text = (row[features.LABEL_KEY] or "").strip()
            if not complaint_id:
                outcomes.without_complaint_id += 1
                continue
            if not text:  # not known yet: its requests wait for a later outcomes file
                outcomes.without_label += 1
                continue
            label = features.integer_label(text)
            if label not in (0, 1):
                raise FeedbackError(
                    f"{origin}, line {line}: {features.LABEL_KEY} is {text!r}; use 1 or 0"
                )
            earlier = outcomes.labels.setdefault(complaint_id, label)
            if earlier != label:
                raise FeedbackError(
                    f"{origin}: complaint {complaint_id} has outcome {earlier} on line "
                    f"{where[complaint_id]} and {label} on line {line}; correct the file, "
                    "feedback does not pick one"
                )
            where.setdefault(complaint_id, line)
            if keep_features:
                outcomes.features[complaint_id] = {
                    k: row[k] for k in features.RAW_FEATURE_KEYS if row.get(k)
                }
    if outcomes.rows and outcomes.without_complaint_id == outcomes.rows:
        raise FeedbackError(f"outcomes {origin}: no row has a complaint id to join requests on")
    if not outcomes.labels:
        raise FeedbackError(f"outcomes {origin}: no row has both a complaint id and an outcome")
