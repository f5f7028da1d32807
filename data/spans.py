"""Span folders of a data directory, DIR/span-N/*.csv (--input-pattern 'span-{SPAN}/*.csv').

The feedback loop (python -m feedback) writes each new span with a manifest beside its
CSV; ExampleGen records that manifest on its Examples artifact, so a model's lineage names the
request log range and the outcomes file its training rows came from.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sys
import tempfile
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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sync(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_span(
    data_dir: Path, span: int, header: tuple[str, ...], rows: list[list], manifest: dict
) -> Path:
    """span-N with its CSV and manifest, whole or not at all: built aside, then renamed."""
    target = data_dir / f"span-{span}"
    partial = Path(tempfile.mkdtemp(prefix=f".span-{span}.", suffix=".partial", dir=data_dir))
    try:
        csv_path = partial / SPAN_CSV
        with open(csv_path, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
            _sync(out)
        manifest["span_csv"] = {
            "file": SPAN_CSV,
            "sha256": sha256_of(csv_path),
            "rows": len(rows),
        }
        with open(partial / FEEDBACK_MANIFEST, "w", encoding="utf-8") as out:
            out.write(json.dumps(manifest, indent=2) + "\n")
            _sync(out)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o777 & ~umask)  # mkdtemp makes it private
        _sync_folder(partial)  # the files' names, then the span's own, survive a power cut
        os.rename(partial, target)
        _sync_folder(data_dir)
    finally:
        if partial.exists():
            for child in partial.iterdir():
                child.unlink()
            partial.rmdir()
    return target
