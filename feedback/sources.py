"""What the feedback loop joins: the model server's request log, a file of later outcomes, and
the labels already in spans.

All are checked before anything is written: a log that is not the server's format, damaged
or empty, and an outcomes file without complaint ids or labels, each stop the run with one line.
A complaint id that data.prepare would drop as malformed (data.normalize.malformed_id) never
joins, in the log or in the outcomes: it is counted and named instead.
"""

from __future__ import annotations

import contextlib
import csv
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cli.atomic import exclusive_lock
from data import normalize, prepare, spans
from data.file_checks import SNIFF_BYTES, ExportError, nul_problem
from data.spans import sha256_of
from models import features
from serving import request_log

RAW_ID, RAW_LABEL = "Complaint ID", "Consumer disputed?"  # a CFPB export's header names
# Complaint ids named per refusal (manifest, summary): enough to find them, not a whole log.
NAMED_IDS = 20
SHOWN_ID_CHARS = 40  # a client chooses what it sends as an id: its length too
LOCK_FILE = ".feedback.lock"
# Log formats read: /2 added the rollout's arm, assignment and shadow columns.
READABLE_FORMATS = request_log.READABLE_FORMATS


class FeedbackError(ValueError):
    """Bad input: printed as one line, exit code 2, nothing written."""


@dataclass
class Refused:
    """Rows refused for one reason: how many, and the first complaint ids, as written."""

    total: int = 0
    complaint_ids: list[str] = field(default_factory=list)

    def add(self, complaint_id: str) -> None:
        self.total += 1
        shown = complaint_id if complaint_id.isprintable() else repr(complaint_id)
        if len(shown) > SHOWN_ID_CHARS:
            shown = shown[: SHOWN_ID_CHARS - 1] + "\u2026"
        if len(self.complaint_ids) < NAMED_IDS and shown not in self.complaint_ids:
            self.complaint_ids.append(shown)

    def names(self) -> str:
        """The ids named, then how many requests or rows are not: for one line of output."""
        more = self.total - len(self.complaint_ids)
        return ", ".join(self.complaint_ids) + (f" and {more:,} more" if more > 0 else "")


# --- the request log --------------------------------------------------------------------------


def _log_id(value) -> str | None:
    """A logged complaint_id as spans and outcomes spell it; None (SQL NULL) when there is
    none, or when data.prepare would drop it as malformed: it can never join an outcome."""
    if value is None or normalize.malformed_id(str(value)):
        return None
    return spans.normalize_id(str(value)) or None


def _malformed_log_id(value) -> int:
    return int(value is not None and normalize.malformed_id(str(value)))


def log_files(location: Path) -> list[Path]:
    """The log's files, oldest first: rotated requests-<time>.sqlite, then requests.sqlite."""
    if not location.exists():
        raise FeedbackError(
            f"request log {location} does not exist (the server's --request_log_dir)"
        )
    files = request_log.log_files(location)
    if not files:
        raise FeedbackError(f"no request log in {location}: expected {request_log.FILE_NAME}")
    return files


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
    if info.get("format") not in READABLE_FORMATS:
        raise FeedbackError(
            f"{path} is not a request log of this server (format {info.get('format')!r}, "
            f"expected one of {', '.join(map(repr, READABLE_FORMATS))})"
        )
    # cid(): the id to join on, NULL if missing or malformed; malformed_id(): which it was.
    connection.create_function("cid", 1, _log_id, deterministic=True)
    connection.create_function("malformed_id", 1, _malformed_log_id, deterministic=True)
    # `served`: the rows whose answer a client got. A shadow's copy (v2's shadow = 1) repeats
    # a served request scored by another version: training on it would count that complaint
    # twice, so every query of the loop reads this view, never the table.
    shadowed = "shadow" in {row[1] for row in connection.execute("PRAGMA table_info(predictions)")}
    where = " WHERE shadow = 0" if shadowed else ""
    connection.execute(f"CREATE TEMP VIEW served AS SELECT * FROM main.predictions{where}")
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
            "SELECT COUNT(*), TOTAL(cid(complaint_id) IS NULL AND NOT malformed_id(complaint_id)), "
            "MIN(id), MAX(id), MIN(received_at), MAX(received_at) FROM served"
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
    # Rows of a prepared CSV whose id data.prepare would drop (an export's are in unreadable).
    malformed_complaint_id: Refused = field(default_factory=Refused)
    labels: dict[str, int] = field(default_factory=dict)
    # Feature columns by complaint id, kept only when asked: for requests logged without them.
    features: dict[str, dict] = field(default_factory=dict)
    _where: dict[str, str] = field(default_factory=dict, repr=False)

    def add(self, row: dict, where: str, keep_features: bool) -> None:
        """One outcome row; a second, different outcome for a complaint stops the run."""
        self.rows += 1
        raw_id = str(row.get(features.ID_KEY) or "")
        if normalize.malformed_id(raw_id):  # never joined: no logged request can have it
            self.malformed_complaint_id.add(raw_id.strip())
            return
        complaint_id = spans.normalize_id(raw_id)
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
        malformed = outcomes.malformed_complaint_id
        raise FeedbackError(
            f"outcomes {path}: no row has both a complaint id and an outcome"
            + (f" ({malformed.total:,} malformed: {malformed.names()})" if malformed.total else "")
        )
    return outcomes


# --- the data folder: what is in spans already, and one writer at a time --------------------


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


def joinable(connection: sqlite3.Connection, outcomes: Outcomes, known: dict[str, str]) -> None:
    """Temp tables: `outcome` (ids with an outcome, not yet in a span) and `spanned`."""
    connection.execute("CREATE TEMP TABLE outcome (complaint_id TEXT PRIMARY KEY, label INTEGER)")
    connection.execute("CREATE TEMP TABLE spanned (complaint_id TEXT PRIMARY KEY)")
    connection.executemany(
        "INSERT INTO temp.outcome VALUES (?, ?)",
        ((cid, label) for cid, label in outcomes.labels.items() if cid not in known),
    )
    connection.executemany("INSERT INTO temp.spanned VALUES (?)", ((cid,) for cid in known))


def writable_problem(data_dir: Path) -> str | None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as error:
        return f"cannot write to data dir {data_dir} ({error.strerror}); choose a writable folder"
    return None


def locked(data_dir: Path) -> contextlib.AbstractContextManager[None]:
    """One feedback run per data folder at a time (two would pick the same span number)."""
    busy = f"another feedback run is writing to {data_dir}; wait for it"
    return exclusive_lock(data_dir / LOCK_FILE, busy, FeedbackError)
