"""Turn raw CFPB complaint exports into the pipeline's canonical CSV.

    python -m data.prepare EXPORT [EXPORT ...] --output data/complaints.csv

EXPORT is a CSV (or the CFPB's complaints.csv.zip) with the CFPB's own header. The
prepared file has the columns of models.features.CANONICAL_COLUMNS, one row per
labelled complaint. It is written to a temporary file and renamed at the end, so a
failed run leaves no output behind (and an existing one intact). What it refuses before
reading a row is in data.checks.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import datetime
import io
import re
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from data.atomic import atomic_write
from data.checks import (
    SNIFF_BYTES,
    ExportError,
    nul_problem,
    output_problem,
    repeated_columns_problem,
)
from data.checks import prepared_file_problem as prepared_file_problem  # the runners' import
from models import features

# CFPB header name -> canonical column. Columns not listed here are ignored.
CFPB_COLUMNS = {
    "Date received": features.DATE_KEY,
    "Product": "product",
    "Sub-product": "sub_product",
    "Issue": "issue",
    "Sub-issue": "sub_issue",
    "Consumer complaint narrative": features.TEXT_KEY,
    "Company": "company",
    "State": "state",
    "ZIP code": features.ZIP_KEY,
    "Submitted via": "submitted_via",
    "Company response to consumer": "company_response",
    "Timely response?": "timely_response",
    "Complaint ID": features.ID_KEY,
    "Consumer disputed?": features.LABEL_KEY,
}
# Older exports lack these; their canonical columns are then left empty.
OPTIONAL_CFPB_COLUMNS = {
    "Sub-product",
    "Sub-issue",
    "Consumer complaint narrative",
    "Complaint ID",
}
REQUIRED_CFPB_COLUMNS = [name for name in CFPB_COLUMNS if name not in OPTIONAL_CFPB_COLUMNS]

LABELS = {"yes": 1, "no": 0}
UNLABELLED = {"", "n/a", "na"}
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y")
PROGRESS_EVERY = 100_000

csv.field_size_limit(sys.maxsize)


@dataclass
class PrepareReport:
    """What a run read, kept and dropped (and why)."""

    rows_read: int = 0
    rows_kept: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)

    def summary(self) -> str:
        lines = [f"rows read: {self.rows_read:,}", f"rows kept: {self.rows_kept:,}"]
        dropped = sum(self.dropped.values())
        lines.append(f"rows dropped: {dropped:,}")
        lines += [f"  {reason}: {count:,}" for reason, count in sorted(self.dropped.items())]
        return "\n".join(lines)


class _SeenIds:
    """Complaint ids already written, as a bitmap: a few MB for the whole database."""

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, complaint_id: str) -> bool:
        """Record the id; False if it was seen before. Non-numeric ids are never duplicates."""
        if not complaint_id.isdigit():
            return True
        number = int(complaint_id)
        byte, bit = divmod(number, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        if self._bits[byte] & (1 << bit):
            return False
        self._bits[byte] |= 1 << bit
        return True


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


@contextlib.contextmanager
def open_export(path: Path) -> Iterator[TextIO]:
    """Open a CSV or a zip holding one CSV, as text, after checking it is not binary."""
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if name.lower().endswith(".csv")]
            if len(members) != 1:
                raise ExportError(f"{path}: expected one .csv inside the zip, found {members}")
            with archive.open(members[0]) as raw:
                yield io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        return
    with open(path, "rb") as raw:
        head = raw.read(SNIFF_BYTES)
    if not head.strip():
        raise ExportError(f"{path}: the file is empty")
    problem = nul_problem(head)
    if problem:
        raise ExportError(f"{path} {problem}")
    with open(path, encoding="utf-8-sig", newline="") as text:
        yield text


def _read_header(reader: Iterator[list[str]], path: Path) -> tuple[list[str], list[str] | None]:
    """The header, fixed for a nameless leading index column, and the first row."""
    header = next(reader, None)
    if not header or not any(name.strip() for name in header):
        raise ExportError(f"{path}: the file has no header row")
    header = [name.strip() for name in header]
    missing = [name for name in REQUIRED_CFPB_COLUMNS if name not in header]
    if missing:
        raise ExportError(
            f"{path}: not a CFPB complaints export: missing column(s) {', '.join(missing)}. "
            f"The header must use the CFPB's names, e.g. {REQUIRED_CFPB_COLUMNS[:3]}."
        )
    repeated = repeated_columns_problem(header, CFPB_COLUMNS)
    if repeated:
        raise ExportError(f"{path}: {repeated}")
    first_row = next(reader, None)
    # Some exports keep a pandas index column: unnamed in the header, or not named at all
    # (then every row has one field more than the header).
    if first_row is not None and len(first_row) == len(header) + 1:
        header = [""] + header
    return header, first_row


def _canonical_rows(
    path: Path, report: PrepareReport, seen: _SeenIds
) -> Iterator[dict[str, str | int]]:
    with open_export(path) as text:
        reader = csv.reader(text)
        try:
            header, first_row = _read_header(reader, path)
            position = {name: header.index(name) for name in CFPB_COLUMNS if name in header}
            rows = reader if first_row is None else _chain(first_row, reader)
            for row in rows:
                if not any(cell.strip() for cell in row):
                    continue
                report.rows_read += 1
                if report.rows_read % PROGRESS_EVERY == 0:
                    print(f"  {path.name}: {report.rows_read:,} rows read", file=sys.stderr)
                if len(row) != len(header):
                    report.dropped["malformed row (wrong number of fields)"] += 1
                    continue
                record = _canonical_record(row, position, report)
                if record is None:
                    continue
                if not seen.add(str(record[features.ID_KEY])):
                    report.dropped["duplicate complaint id"] += 1
                    continue
                report.rows_kept += 1
                yield record
        except UnicodeDecodeError as error:
            raise ExportError(
                f"{path}: not UTF-8 text near row {report.rows_read + 1}: {error.reason}"
            ) from error
        except csv.Error as error:
            raise ExportError(
                f"{path}: unreadable CSV near row {report.rows_read + 1}: {error}"
            ) from error


def _chain(first: list[str], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from rest


def _canonical_record(
    row: list[str], position: dict[str, int], report: PrepareReport
) -> dict[str, str | int] | None:
    values = {
        canonical: row[position[name]].replace("\r\n", "\n").strip() if name in position else ""
        for name, canonical in CFPB_COLUMNS.items()
    }
    try:
        label = parse_label(values[features.LABEL_KEY])
    except ValueError:
        report.dropped["label not Yes/No"] += 1
        return None
    if label is None:
        report.dropped["no label (Consumer disputed? empty)"] += 1
        return None
    date = normalize_date(values[features.DATE_KEY])
    if date is None:
        report.dropped["unparseable Date received"] += 1
        return None
    values[features.DATE_KEY] = date
    values[features.ZIP_KEY] = normalize_zip(values[features.ZIP_KEY])
    values[features.LABEL_KEY] = label
    return values


def prepare_cfpb_exports(sources: list[Path], destination: Path) -> PrepareReport:
    """Write the canonical CSV of all labelled rows of `sources` to `destination`, atomically."""
    problem = output_problem(sources, destination)
    if problem:
        raise ExportError(problem)
    report = PrepareReport()
    seen = _SeenIds()
    with atomic_write(destination, encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=features.CANONICAL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for source in sources:
            writer.writerows(_canonical_rows(source, report, seen))
        if report.rows_kept == 0:
            raise ExportError(f"no labelled rows in {', '.join(map(str, sources))}")
    return report


def prepare_and_report(sources: list[Path], destination: Path) -> int:
    """Prepare and print what was done: exit code 0, or 2 with the reason for a bad export."""
    try:
        report = prepare_cfpb_exports(sources, destination)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wrote {destination}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.prepare",
        description="Turn raw CFPB complaint exports (CSV or complaints.csv.zip) into the "
        "pipeline's canonical CSV: ISO dates, 5-character ZIP codes, label 1/0, "
        "unlabelled rows dropped and counted.",
    )
    parser.add_argument("exports", nargs="+", type=Path, help="raw CFPB export(s), CSV or zip")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="canonical CSV to write (replaced whole, only when the run succeeds; "
        "not one of the exports)",
    )
    args = parser.parse_args(argv)
    return prepare_and_report(args.exports, args.output)


if __name__ == "__main__":
    sys.exit(main())
