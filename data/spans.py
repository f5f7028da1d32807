"""Span folders of a data directory, DIR/span-N/*.csv (--input-pattern 'span-{SPAN}/*.csv').

The feedback loop (python -m serving.feedback) writes each new span with a manifest beside its
CSV; ExampleGen records that manifest on its Examples artifact, so a model's lineage names the
request log range and the outcomes file its training rows came from.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from data.normalize import normalize_complaint_id
from models import features

SPAN_FOLDER = re.compile(r"span-([0-9]+)")
SPAN_PATTERN = "span-{SPAN}/*.csv"  # the --input-pattern that reads these folders
SPAN_CSV = "complaints.csv"
FEEDBACK_MANIFEST = "feedback-manifest.json"
FEEDBACK_FORMAT = "cfpb-feedback-span/1"

csv.field_size_limit(sys.maxsize)


def span_folders(data_dir: Path) -> dict[int, Path]:
    """{span number: folder} of the span-N folders directly under data_dir."""
    if not data_dir.is_dir():
        return {}
    found = {}
    for child in data_dir.iterdir():
        match = SPAN_FOLDER.fullmatch(child.name)
        if match and child.is_dir():
            found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def normalize_id(raw: str) -> str:
    """One spelling per id wherever it comes from: " 1234", "1234.0", "01234" -> "1234"."""
    raw = raw.strip()
    digits = normalize_complaint_id(raw)
    return (digits.lstrip("0") or "0") if digits else raw


def labelled_ids(folder: Path) -> Iterator[tuple[str, str, str]]:
    """(complaint_id, label, "file:line") of every row with an id in a span's CSV files."""
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                complaint_id = normalize_id(row.get(features.ID_KEY) or "")
                if complaint_id:
                    label = (row.get(features.LABEL_KEY) or "").strip()
                    yield complaint_id, label, f"{path}:{line}"
