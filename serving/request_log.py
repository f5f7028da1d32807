"""The durable request log: one SQLite row per predicted example, committed before the answer.

Writes are group-committed: one writer thread takes every record queued since its last commit,
inserts them in one transaction and commits (WAL mode; with synchronous=FULL the commit is on
disk), then releases the requests waiting on them. A request whose record is not committed gets
no 200, so a kill -9 (or a power cut, with FULL) loses no acknowledged record. The log is bounded:
past max_bytes the file is renamed to requests-<UTC time>.sqlite and a new one started; the
newest `keep` rotated files are kept. The format is documented in docs/serving.md ("The request
log") because the feedback loop turns these rows into training data by complaint_id.

Format 2 adds, per row, the arm (the label a rollout or the client chose), why (split, explicit,
default, shadow) and a shadow flag: a shadow row scored a copy of the request and was never
returned; it shares request_id and instance with the served row. A format 1 file found at
start is rotated away, so one file never mixes formats; readers take both (READABLE_FORMATS).
"""

from __future__ import annotations

import datetime
import logging
import os
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import orjson

from models import features

log = logging.getLogger("serving")
FORMAT = "cfpb-request-log/2"
FORMAT_V1 = "cfpb-request-log/1"
READABLE_FORMATS = (FORMAT_V1, FORMAT)
FILE_NAME = "requests.sqlite"
ROTATED = "requests-*.sqlite"  # requests-<UTC time>.sqlite: names sort by age
LOG_FEATURES = ("all", "no_text", "none")
COLUMNS = (
    "request_id",
    "instance",
    "received_at",
    "model_name",
    "model_version",
    "version_label",
    "protocol",
    "signature_name",
    "complaint_id",
    "features",
    "unknown_features",
    "dispute_probability",
    "outputs",
    "latency_ms",
    "arm",
    "assignment",
    "shadow",
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    instance INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    version_label TEXT,
    protocol TEXT NOT NULL,
    signature_name TEXT NOT NULL,
    complaint_id TEXT,
    features TEXT NOT NULL,
    unknown_features TEXT,
    dispute_probability REAL,
    outputs TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    arm TEXT,
    assignment TEXT NOT NULL,
    shadow INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INSERT = f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


@dataclass
class Entry:
    """One request's prediction, turned into rows on the writer thread (off the request path)."""

    request_id: str
    received: float  # epoch seconds
    model_name: str
    version: int
    label: str | None
    protocol: str
    signature: str
    # per example {name: (kind, values)}, as serving.request_examples reads them
    examples: list[dict]
    known: set[str] | None  # the features the model reads (None: not known, keep all)
    unknown: list[str]
    outputs: dict  # name -> per-example numpy values
    latency_ms: float
    arm: str | None = None  # the label the request was assigned to (None: no rollout, no label)
    assignment: str = "default"  # split, explicit, default or shadow (serving.rollout)
    shadow: bool = False  # a shadow's copy: its answer was never returned


def iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def loggable(example: dict, keep: set[str] | None, drop: set[str]) -> dict:
    """Features as JSON-ready values: text decoded, one value bare, several as a list."""
    out = {}
    for name, (_, values) in example.items():
        if name in drop or (keep is not None and name not in keep):
            continue
        plain = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
        out[name] = plain[0] if len(plain) == 1 else plain
    return out


def complaint_id(example: dict) -> str | None:
    """The complaint_id of one example as the log (and the rollout's sticky split) spell it."""
    found = loggable(example, {features.ID_KEY}, set()).get(features.ID_KEY)
    return str(found) if found not in (None, "", []) else None


def _plain(value):
    if isinstance(value, bytes):  # a string output
        return value.decode("utf-8", "replace")
    return [_plain(v) for v in value] if isinstance(value, list) else value


class RequestLog:
    def __init__(
        self,
        directory: str,
        log_features: str = "all",
        max_bytes: int = 256 * 2**20,
        keep: int = 3,
        synchronous: str = "FULL",
        on_commit=None,
    ):
        if log_features not in LOG_FEATURES:
            raise ValueError(f"log_features must be one of {LOG_FEATURES}")
        os.makedirs(directory, exist_ok=True)
        self.directory, self.log_features = directory, log_features
        self.path = os.path.join(directory, FILE_NAME)
        self._max_bytes, self._keep, self._sync = max_bytes, keep, synchronous
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._rotate_older_format()
        self._connection = self._open()
        self._closed = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="request-log", daemon=True)
        self._writer.start()

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self._sync}")
        connection.executescript(SCHEMA)
        connection.executemany(
            "INSERT OR REPLACE INTO log_info VALUES (?, ?)",
            [("format", FORMAT), ("log_features", self.log_features)],
        )
        return connection

    def append(self, entry: Entry) -> Future:
        """Queue an entry; the future resolves once its rows are committed."""
        future: Future = Future()
        if self._closed.is_set():
            future.set_exception(RuntimeError("the request log is closed"))
            return future
        self._queue.put((entry, future))
        return future

    def close(self) -> None:
        """Commit everything queued, then stop."""
        self._closed.set()
        self._queue.put(None)
        self._writer.join()
        self._connection.close()

    def rows(self, entry: Entry) -> list[tuple]:
        drop = {features.TEXT_KEY} if self.log_features != "all" else set()
        keep = entry.known  # values of unknown features are not kept: only their names
        if self.log_features == "none":
            keep = {features.ID_KEY}
        unknown = orjson.dumps(entry.unknown).decode() if entry.unknown else None
        received = iso(entry.received)
        probabilities = entry.outputs.get(features.PREDICTION_KEY)
        if probabilities is not None and (probabilities.ndim != 1 or probabilities.dtype == object):
            probabilities = None  # the column holds one number per example, or nothing
        # Per-example outputs as plain Python values (float32 -> float, as JSON writes it).
        columns = {name: values.tolist() for name, values in entry.outputs.items()}
        rows = []
        for index, example in enumerate(entry.examples):
            kept = loggable(example, keep, drop)
            outputs = {name: _plain(values[index]) for name, values in columns.items()}
            probability = float(probabilities[index]) if probabilities is not None else None
            rows.append(
                (
                    entry.request_id,
                    index,
                    received,
                    entry.model_name,
                    entry.version,
                    entry.label,
                    entry.protocol,
                    entry.signature,
                    complaint_id(example),
                    orjson.dumps(kept).decode(),
                    unknown,
                    probability,
                    orjson.dumps(outputs).decode(),
                    round(entry.latency_ms, 3),
                    entry.arm,
                    entry.assignment,
                    int(entry.shadow),
                )
            )
        return rows

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            pending = [self._queue.get()]
            while True:  # everything queued meanwhile goes into the same transaction
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in pending:
                stopping = True
                pending = [item for item in pending if item is not None]
            if pending:
                self._commit(pending)

    def _commit(self, pending: list) -> None:
        started = time.perf_counter()
        try:
            rows = [row for entry, _ in pending for row in self.rows(entry)]
            self._connection.execute("BEGIN")
            self._connection.executemany(_INSERT, rows)
            self._connection.execute("COMMIT")
        except Exception as error:
            log.exception("request log write failed; %d requests get an error", len(pending))
            try:
                self._connection.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for _, future in pending:
                future.set_exception(error)
            return
        for _, future in pending:
            future.set_result(None)
        if self._on_commit:
            self._on_commit(len(rows), time.perf_counter() - started)
        self._rotate_if_full()

    def size(self) -> int:
        return sum(
            os.path.getsize(self.path + suffix)
            for suffix in ("", "-wal")
            if os.path.exists(self.path + suffix)
        )

    def _rotate_if_full(self) -> None:
        if self.size() < self._max_bytes:
            return
        self._rotate(self._connection)
        log.info("request log rotated at %d bytes", self._max_bytes)
        self._connection = self._open()

    def _rotate_older_format(self) -> None:
        """A file of another format (an older server's) is rotated away before this one writes."""
        if not os.path.exists(self.path):
            return
        connection = sqlite3.connect(self.path, isolation_level=None)
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        info = "log_info" in tables and dict(connection.execute("SELECT * FROM log_info"))
        found = info.get("format") if info else None
        if "predictions" not in tables or found == FORMAT:
            connection.close()
            return
        self._rotate(connection)
        log.info("request log %s of format %s rotated away; writing %s", self.path, found, FORMAT)

    def _rotate(self, connection: sqlite3.Connection) -> None:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()  # the last connection also removes the WAL
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = os.path.join(self.directory, f"requests-{stamp}.sqlite")
        # A WAL left by a reader's open snapshot travels with its file; SQLite replays it on open.
        for suffix in ("-wal", ""):
            if os.path.exists(self.path + suffix):
                os.replace(self.path + suffix, target + suffix)
        if os.path.exists(self.path + "-shm"):
            os.remove(self.path + "-shm")
        rotated = sorted(Path(self.directory).glob(ROTATED))
        for path in rotated[: max(0, len(rotated) - self._keep)]:
            for suffix in ("", "-wal", "-shm"):  # a reader (python -m feedback) may leave a -shm
                if os.path.exists(f"{path}{suffix}"):
                    os.remove(f"{path}{suffix}")


def log_files(location: Path) -> list[Path]:
    """The files of a log folder, oldest first (rotated ones, then the current one), for the
    readers of the log (feedback, monitoring); a file given itself; [] when there is none."""
    if location.is_file():
        return [location]
    if not location.is_dir():
        return []
    found = [*sorted(location.glob(ROTATED)), location / FILE_NAME]
    return [path for path in found if path.is_file()]


def file_format(path: Path) -> str:
    """The format of one log file, if this version reads it; else ValueError, one line."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            found = dict(connection.execute("SELECT key, value FROM log_info")).get("format")
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path} is not a readable request log ({error})") from None
    if found not in READABLE_FORMATS:
        raise ValueError(
            f"{path} is a request log of format {found!r}; this version reads "
            f"{', '.join(READABLE_FORMATS)}"
        )
    return found


def rollout_columns(log_format: str) -> str:
    """SQL for the columns arm, assignment, shadow of a file of this format: format 1 rows had
    no rollout, so their arm is the label the client named (explicit) or none (default)."""
    if log_format == FORMAT_V1:
        return (
            "version_label AS arm, CASE WHEN version_label IS NULL THEN 'default' "
            "ELSE 'explicit' END AS assignment, 0 AS shadow"
        )
    return "arm, assignment, shadow"
