"""What the A/B report reads: the request log's rows with the arm each was served by, joined
with later outcomes by complaint id, by the feedback loop's own rules (feedback/sources.py).

Only logs of format cfpb-request-log/2 record arms. A folder may still hold rotated files of
the older format (the server rotates a /1 file away when it starts with /2): they predate
every rollout and are left out, named in a note; a log of /1 files alone cannot be judged.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

from feedback import sources
from feedback.sources import FeedbackError
from models import features

V1, V2 = "cfpb-request-log/1", "cfpb-request-log/2"


class ABTestError(ValueError):
    """Input the A/B report cannot judge: one line, exit 2, nothing written."""


@dataclass(frozen=True)
class Logged:
    """One logged prediction, as the report uses it."""

    row: int
    request_id: str
    instance: int
    received_at: str
    model_name: str
    version: int
    arm: str | None  # the label the request was assigned to (NULL: none)
    assignment: str  # split, explicit, default or shadow
    shadow: bool  # a shadow's copy: its answer was never returned
    complaint_id: str | None  # as the join spells it; None: missing or malformed
    probability: float | None
    decision: int | None  # the logged `disputed` output: the version's own threshold
    latency_ms: float


@dataclass
class LogExtent:
    """Which rows of which file were read: the evidence a decision names."""

    path: str
    format: str
    rows: int
    first_row: int | None
    last_row: int | None
    first_received_at: str | None
    last_received_at: str | None


@dataclass
class LogRead:
    rows: list[Logged]
    files: list[LogExtent]
    skipped: list[str] = field(default_factory=list)  # v1 files: before any rollout

    def evidence(self) -> list[dict]:
        return [asdict(extent) for extent in self.files]


_SELECT = (
    "SELECT id, request_id, instance, received_at, model_name, model_version, arm, assignment, "
    "shadow, cid(complaint_id), dispute_probability, outputs, latency_ms FROM main.predictions "
    "WHERE received_at >= ? AND received_at < ? ORDER BY id"
)


def _decision(outputs: str) -> int | None:
    try:
        value = json.loads(outputs).get(features.DECISION_KEY)
    except (json.JSONDecodeError, AttributeError):
        return None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_log(location: Path, since: str, until: str) -> LogRead:
    """Every row of the log's v2 files received in [since, until), oldest first."""
    try:
        files = sources.log_files(location)
    except FeedbackError as error:
        raise ABTestError(str(error)) from None
    found = LogRead([], [])
    for path in files:
        if not path.exists():  # rotated away since the folder was listed
            continue
        try:
            connection = sources.open_log(path)
        except FeedbackError as error:
            raise ABTestError(str(error)) from None
        try:
            kind = connection.execute("SELECT value FROM log_info WHERE key = 'format'")
            kind = kind.fetchone()[0]
            if kind == V1:
                found.skipped.append(str(path))
                continue
            connection.execute("BEGIN")  # one snapshot: the extent and the rows agree
            rows = connection.execute(_SELECT, (since, until)).fetchall()
        except sqlite3.Error as error:
            raise ABTestError(f"{path} is not a readable request log: {error}") from None
        finally:
            connection.close()
        found.files.append(
            LogExtent(
                str(path.resolve()),
                kind,
                len(rows),
                rows[0][0] if rows else None,
                rows[-1][0] if rows else None,
                rows[0][3] if rows else None,
                rows[-1][3] if rows else None,
            )
        )
        for r in rows:
            found.rows.append(
                Logged(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), r[9],
                       r[10], _decision(r[11]), r[12])
            )  # fmt: skip
    if not found.files and found.skipped:
        raise ABTestError(
            f"{found.skipped[-1]} is a request log from before the rollout (format {V1!r}): it "
            f"records no arm per request, so no A/B test can be read from it; serve with "
            f"--rollout_file and judge the {V2!r} log written since"
        )
    if not found.rows:
        total = ", ".join(extent.path for extent in found.files)
        raise ABTestError(f"no predictions from {since} to {until} in {total}: widen --since")
    return found


def read_labels(path: Path) -> sources.Outcomes:
    """The outcomes file, read and checked as the feedback loop reads it."""
    try:
        return sources.read_outcomes(path)
    except FeedbackError as error:
        raise ABTestError(str(error)) from None


def check_matches(log: LogRead, outcomes: sources.Outcomes) -> int:
    """How many logged complaints have an outcome; none is bad input (the wrong file?)."""
    logged = {row.complaint_id for row in log.rows if row.complaint_id is not None}
    matched = len(logged & outcomes.labels.keys())
    if not matched:
        example = next(iter(sorted(logged)), None)
        raise ABTestError(
            f"outcomes {outcomes.path}: none of its {len(outcomes.labels):,} complaint ids is in "
            f"the request log ({len(logged):,} logged complaint ids"
            + (f", e.g. {example}" if example else ", none at all")
            + "): the wrong outcomes file, or the wrong log?"
        )
    return matched
