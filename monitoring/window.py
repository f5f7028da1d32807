"""Which logged predictions the monitor judges: a window of the server's request log by time and
count (its rotated files read together, read-only), of one model version, and the features the
log kept.
"""

from __future__ import annotations

import datetime
import re
import sqlite3
from pathlib import Path

from models import features
from monitoring.comparisons import MonitorError
from serving import request_log

DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)  # before any logged row


COLUMNS = "id, received_at, model_name, model_version, features, unknown_features, "
COLUMNS += "dispute_probability"
SHADOW = 7  # a row's last column: 1 for a shadow's copy (format 2), whose answer was not returned


def parse_time(text: str, what: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MonitorError(
            f"{what} {text!r} is not an ISO time such as 2026-11-25T08:00Z{' or a duration such as 24h' if what == '--since' else ''}"  # noqa: E501
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def window_bounds(args) -> tuple[str, str]:
    """(since, until) as the log writes times, so SQLite compares them as text."""
    now = datetime.datetime.now(datetime.timezone.utc)
    until = parse_time(args.until, "--until") if args.until else now
    if args.since == "all":
        since = EPOCH
    elif match := DURATION.fullmatch(args.since):
        # A duration reaching back past 1970 is "all": datetime cannot hold 99999999 days.
        back = min(float(match[1]) * UNITS[match[2]], (until - EPOCH).total_seconds())
        since = until - datetime.timedelta(seconds=back)
    else:
        since = parse_time(args.since, "--since")
    if since >= until:
        raise MonitorError(f"the window is empty: --since {args.since} is not before --until")
    return request_log.iso(since.timestamp()), request_log.iso(until.timestamp())


def log_files(location: Path) -> list[Path]:
    found = request_log.log_files(location)
    if not found:
        raise MonitorError(
            f"no request log at {location}: start the server (python -m serving), or pass "
            "--request-log with its folder or file"
        )
    return found


def read_window(files: list[Path], since: str, until: str, last: int | None):
    """(rows newest first, log_features settings, total rows in the files)."""
    rows, settings, total = [], set(), 0
    limit = f" LIMIT {int(last)}" if last else ""
    for path in files:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
                info = dict(connection.execute("SELECT key, value FROM log_info"))
                if info.get("format") not in request_log.READABLE_FORMATS:
                    raise MonitorError(
                        f"{path} is a log of format {info.get('format')!r}, not one of "
                        f"{', '.join(map(repr, request_log.READABLE_FORMATS))}"
                    )
                settings.add(info.get("log_features", "all"))
                shadow = "0" if info["format"] == request_log.FORMAT_V1 else "shadow"
                total += connection.execute("SELECT count(*) FROM predictions").fetchone()[0]
                rows += connection.execute(
                    f"SELECT {COLUMNS}, {shadow} FROM predictions WHERE received_at >= ? AND "
                    f"received_at < ? ORDER BY received_at DESC, id DESC{limit}",
                    (since, until),
                ).fetchall()
        except sqlite3.Error as error:
            raise MonitorError(f"{path} is not a readable request log: {error}") from None
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows[:last] if last else rows, settings, total


def select_model(rows: list[tuple], name: str | None, version: int | None):
    """The rows of one served model version: the asked one, else the newest served row's (a
    shadow's copies are its version's rows too, but a shadow is not what serves)."""
    served = [row for row in rows if not row[SHADOW]] or rows
    name = name or served[0][2]
    version = version or next((row[3] for row in served if row[2] == name), None)
    chosen = [row for row in rows if row[2] == name and row[3] == version]
    others: dict[str, int] = {}
    for row in rows:
        if (row[2], row[3]) != (name, version):
            others[f"{row[2]} version {row[3]}"] = others.get(f"{row[2]} version {row[3]}", 0) + 1
    if not chosen:
        raise MonitorError(
            f"no predictions of {name} version {version} in the window (it has: "
            f"{', '.join(sorted(others)) or 'nothing'}); pick --model-name/--model-version"
        )
    return name, version, chosen, others


def logged_features(settings: set[str]) -> set[str]:
    """The raw features every file of the window keeps (docs/serving.md: --log_features)."""
    kept = set(features.RAW_FEATURE_KEYS)
    if settings - {"all"}:
        kept.discard(features.TEXT_KEY)
    if "none" in settings:
        raise MonitorError(
            "the request log keeps no feature values (the server ran with --log_features=none): "
            "there is nothing to compare; restart it with --log_features=all or no_text"
        )
    return kept
