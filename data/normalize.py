"""How data.prepare normalizes the CFPB's values: dates, ZIP codes, labels, complaint ids."""

from __future__ import annotations

import datetime
import re

LABELS = {"yes": 1, "no": 0}
UNLABELLED = {"", "n/a", "na"}
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y")


def normalize_date(value: str) -> str | None:
    """ISO date from any of the CFPB's date formats, or None if unparseable."""
    value = value.strip().split("T")[0].split(" ")[0]
    for date_format in DATE_FORMATS:
        try:
            return datetime.datetime.strptime(value, date_format).date().isoformat()
        except ValueError:
            continue
    return None


def normalize_zip(value: str) -> str:
    """Five-character ZIP: leading zeros restored, ZIP+4 cut, masks (124XX) kept."""
    value = value.strip().upper()
    if re.fullmatch(r"\d{3,4}", value):
        return value.zfill(5)
    if re.fullmatch(r"\d{5}(-\d{4})?", value):
        return value[:5]
    if re.fullmatch(r"\d{3}XX", value):
        return value
    return ""


def parse_label(value: str) -> int | None:
    """1 for Yes, 0 for No, None for no label; ValueError for anything else."""
    value = value.strip().lower()
    if value in UNLABELLED:
        return None
    if value in LABELS:
        return LABELS[value]
    raise ValueError(value)


COMPLAINT_ID = re.compile(r"([0-9]+)(?:\.0+)?")


def normalize_complaint_id(raw: str) -> str | None:
    """The id's digits; "1234.0" (a spreadsheet's re-save) is 1234. None if not a number."""
    match = COMPLAINT_ID.fullmatch(raw)
    return match.group(1) if match else None


def malformed_id(raw: str) -> bool:
    """data.prepare's rule: a Complaint ID that is there but not a number ("abc", "-3", "4.50")
    is malformed and its row dropped; a blank one is only missing."""
    raw = raw.strip()
    return bool(raw) and normalize_complaint_id(raw) is None
