"""What the feedback loop joins: the model server's request log and a file of later outcomes.

Both are checked before anything is written: a log that is not the server's format, damaged
or empty, and an outcomes file without complaint ids or labels, each stop the run with one line.
"""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from data import prepare, spans
from data.checks import SNIFF_BYTES, ExportError, nul_problem
from data.spans import sha256_of
from models import features
from serving import request_log

RAW_ID, RAW_LABEL = "Complaint ID", "Consumer disputed?"  # a CFPB export's header names


class FeedbackError(ValueError):
    """Bad input: printed as one line, exit code 2, nothing written."""


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
        setting = mode[0] if mode else "all"  # a log just rotated may not have it yet
        return cls(str(path.resolve()), count, int(without), first, last, since, until, setting)


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
    unreadable: dict[str, int] = field(default_factory=dict)  # export rows data.prepare dropped
    labels: dict[str, int] = field(default_factory=dict)
    # Feature columns by complaint id, kept only when asked: for requests logged without them.
    features: dict[str, dict] = field(default_factory=dict)
    _where: dict[str, str] = field(default_factory=dict, repr=False)

    def add(self, row: dict, where: str, keep_features: bool) -> None:
        """One outcome row; a second, different outcome for a complaint stops the run."""
        self.rows += 1
        complaint_id = spans.normalize_id(str(row.get(features.ID_KEY) or ""))
        label_value = row.get(features.LABEL_KEY)  # an int 0 from data.prepare is an outcome
        text = "" if label_value is None else str(label_value).strip()
        if not complaint_id:
            self.without_complaint_id += 1
            return
        if not text:  # not known yet: its requests wait for a later outcomes file
            self.without_label += 1
            return
        label = features.integer_label(text)
        if label not in (0, 1):
            raise FeedbackError(f"{where}: {features.LABEL_KEY} is {text!r}; use 1 or 0")
        earlier = self.labels.setdefault(complaint_id, label)
        if earlier != label:
            raise FeedbackError(
                f"complaint {complaint_id} has outcome {earlier} at {self._where[complaint_id]} "
                f"and {label} at {where}; correct the file, feedback does not pick one"
            )
        self._where.setdefault(complaint_id, where)
        if keep_features:
            self.features[complaint_id] = {
                k: row[k] for k in features.RAW_FEATURE_KEYS if row.get(k)
            }


class _EveryRow:
    """data.prepare keeps the first row of a repeated complaint; feedback must see them all,
    to stop on a contradiction."""

    def add(self, complaint_id: str) -> bool:
        return True


def read_outcomes(path: Path, keep_features: bool = False) -> Outcomes:
    if not path.is_file():
        raise FeedbackError(f"outcomes file {path} does not exist or is not a file")
    try:
        with open(path, "rb") as handle:
            problem = nul_problem(handle.read(SNIFF_BYTES))
        if problem:
            raise FeedbackError(f"outcomes {path} {problem}")
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
        outcomes = Outcomes(str(path.resolve()), sha256_of(path), "prepared")
        if RAW_ID in header and RAW_LABEL in header:
            outcomes.kind = "cfpb-export"
            report = prepare.PrepareReport()
            for number, row in enumerate(prepare.canonical_rows(path, report, _EveryRow()), 1):
                outcomes.add(row, f"{path}, labelled row {number}", keep_features)
            outcomes.unreadable = dict(report.dropped)
        elif features.ID_KEY in header and features.LABEL_KEY in header:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                for line, row in enumerate(csv.DictReader(handle), start=2):
                    outcomes.add(row, f"{path}, line {line}", keep_features)
        else:
            raise FeedbackError(
                f"outcomes {path}: the header needs {features.ID_KEY} and {features.LABEL_KEY} "
                f"(a prepared CSV) or {RAW_ID!r} and {RAW_LABEL!r} (a CFPB export); it has "
                + ", ".join(header[:8])
            )
    except ExportError as error:
        raise FeedbackError(f"outcomes {path}: {error}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise FeedbackError(f"outcomes {path} cannot be read: {error}") from None
    if outcomes.rows and outcomes.without_complaint_id == outcomes.rows:
        raise FeedbackError(f"outcomes {path}: no row has a complaint id to join requests on")
    if not outcomes.labels:
        raise FeedbackError(f"outcomes {path}: no row has both a complaint id and an outcome")
    return outcomes
