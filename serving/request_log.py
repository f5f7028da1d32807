"""The durable request log: one SQLite row per predicted example, committed before the answer.

Writes are group-committed: one writer thread takes every record queued since its last commit,
inserts them in one transaction and commits (WAL mode; with synchronous=FULL the commit is on
disk), then releases the requests waiting on them. A request whose record is not committed gets
no 200, so a kill -9 (or a power cut, with FULL) loses no acknowledged record. The log is bounded:
past max_bytes the file is renamed to requests-<UTC time>.sqlite and a new one started; the
newest `keep` rotated files are kept. The format is documented in docs/serving.md ("The request
log") because the feedback loop turns these rows into training data by complaint_id.
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
FORMAT = "cfpb-request-log/1"
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
    latency_ms REAL NOT NULL
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
            complaint_id = loggable(example, {features.ID_KEY}, set()).get(features.ID_KEY)
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
                    str(complaint_id) if complaint_id not in (None, "", []) else None,
                    orjson.dumps(kept).decode(),
                    unknown,
                    probability,
                    orjson.dumps(outputs).decode(),
                    round(entry.latency_ms, 3),
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
        self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._connection.close()  # the last connection also removes the WAL
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
        log.info("request log rotated at %d bytes", self._max_bytes)
        self._connection = self._open()


def log_files(location: Path) -> list[Path]:
    """The files of a log folder, oldest first (rotated ones, then the current one), for the
    readers of the log (feedback, monitoring); a file given itself; [] when there is none."""
    if location.is_file():
        return [location]
    if not location.is_dir():
        return []
    found = [*sorted(location.glob(ROTATED)), location / FILE_NAME]
    return [path for path in found if path.is_file()]
