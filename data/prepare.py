"""Turn raw CFPB complaint exports into the pipeline's canonical CSV.

    python -m data.prepare EXPORT [EXPORT ...] --output data/complaints.csv

EXPORT is a CSV (or the CFPB's complaints.csv.zip) with the CFPB's own header. The
prepared file has the columns of models.features.CANONICAL_COLUMNS, one row per
labelled complaint. It is written to a temporary file and renamed at the end, so a
failed run leaves no output behind (and an existing one intact). What it refuses before
reading a row is in data.file_checks; how it reads rows that break the CSV quoting, in
data.records.
"""

from __future__ import annotations

import argparse
import collections
import csv
import itertools
import operator
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cli.atomic import atomic_write
from data.file_checks import (
    ExportError,
    delimiter_problem,
    output_problem,
    repeated_columns_problem,
)
from data.normalize import (  # noqa: F401 (normalize_date, normalize_zip: public here too)
    DATE_FORMATS,
    malformed_id,
    normalize_complaint_id,
    normalize_date,
    normalize_zip,
    parse_label,
)
from data.records import (
    Record,
    RecordReader,
    has_stray_quote,
    not_utf8_message,
    open_export,
    row_start,
)
from data.seen_ids import SeenIds
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
    "Tags": features.TAGS_KEY,
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
    "Tags",
}
REQUIRED_CFPB_COLUMNS = [name for name in CFPB_COLUMNS if name not in OPTIONAL_CFPB_COLUMNS]
# The only column whose values may span lines; a line break elsewhere means rows merged.
MULTI_LINE_COLUMNS = {"Consumer complaint narrative"}

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


def _read_header(records: RecordReader, path: Path) -> tuple[list[str], Record | None]:
    """The header, fixed for a nameless leading index column, and the first record."""
    header_record = next(records, Record(None, []))
    header = [name.strip() for name in header_record.fields or []]
    missing = [name for name in REQUIRED_CFPB_COLUMNS if name not in header]
    if missing and header_record.lines:
        # Split on commas, a ';' export's header is one name, or no parse at all if quoted.
        delimiter = delimiter_problem(header_record.lines[0], REQUIRED_CFPB_COLUMNS)
        if delimiter:
            raise ExportError(f"{path}: {delimiter}")
    if not any(header):
        raise ExportError(f"{path}: the file has no readable header row")
    if missing:
        raise ExportError(
            f"{path}: not a CFPB complaints export: missing column(s) {', '.join(missing)}. "
            f"The header must use the CFPB's names, e.g. {REQUIRED_CFPB_COLUMNS[:3]}."
        )
    repeated = repeated_columns_problem(header, CFPB_COLUMNS)
    if repeated:
        raise ExportError(f"{path}: {repeated}")
    first = next(records, None)
    if first is not None and _has_nameless_index(header, first):
        header = [""] + header
    return header, first


def _has_nameless_index(header: list[str], first: Record) -> bool:
    """Whether rows start with a pandas index column the header does not name at all.

    The first raw line tells where its date is, even if that row's quoting is broken; a line
    without a date falls back to the field count (one more than the header).
    """
    date_at = header.index("Date received")
    line = first.lines[0]
    if row_start(date_at).match(line):
        return False
    if row_start(date_at + 1).match(line):
        return True
    return first.fields is not None and len(first.fields) == len(header) + 1


@dataclass
class _Layout:
    """Where a file's rows keep the columns this command reads."""

    width: int  # fields per row
    position: dict[str, int]  # CFPB column name -> field index
    one_line: Callable[[list[str]], tuple[str, ...]]  # the fields that cannot span lines
    starts_row: re.Pattern[str]  # a raw line that begins a row

    @classmethod
    def of(cls, header: list[str]) -> _Layout:
        position = {name: header.index(name) for name in CFPB_COLUMNS if name in header}
        one_line = [at for name, at in position.items() if name not in MULTI_LINE_COLUMNS]
        return cls(
            len(header),
            position,
            operator.itemgetter(*one_line),  # 9 or more columns: returns a tuple
            row_start(header.index("Date received")),
        )


def canonical_rows(
    path: Path, report: PrepareReport, seen: SeenIds
) -> Iterator[dict[str, str | int]]:
    with open_export(path) as text:
        records = RecordReader(text, path)
        try:
            header, first = _read_header(records, path)
            layout = _Layout.of(header)
            in_step = True  # the next record begins a row (not the tail of a broken one)
            for record in itertools.chain([first] if first else [], records):
                if record.fields is not None and not any(cell.strip() for cell in record.fields):
                    continue
                problem = _malformed(record, layout)
                if problem is not None:
                    # Count a broken row once (the tail of one is not a row) and read again the
                    # rows it swallowed. A lost opening quote can end a record inside a field:
                    # the next record is then a row only if it begins like one.
                    if in_step or layout.starts_row.match(record.lines[0]):
                        _count_read(report, path)
                        report.dropped[problem] += 1
                    in_step = records.reread_swallowed(record, layout.starts_row)
                    continue
                in_step = True
                _count_read(report, path)
                values = _canonical_record(record.fields, layout.position, report)
                if values is None:
                    continue
                complaint_id = str(values[features.ID_KEY])
                if complaint_id and not seen.add(complaint_id):
                    report.dropped["duplicate complaint id"] += 1
                    continue
                report.rows_kept += 1
                yield values
        except UnicodeDecodeError as error:
            raise ExportError(not_utf8_message(path, error)) from error


def _count_read(report: PrepareReport, path: Path) -> None:
    report.rows_read += 1
    if report.rows_read % PROGRESS_EVERY == 0:
        print(f"  {path.name}: {report.rows_read:,} rows read", file=sys.stderr)


def _malformed(record: Record, layout: _Layout) -> str | None:
    """Why a record's fields do not fit the header's columns (a broken row); None if they do."""
    fields = record.fields
    if fields is None or has_stray_quote(record):
        return "malformed row (broken quoting)"
    if len(fields) != layout.width:
        return "malformed row (wrong number of fields)"
    one_line = "".join(layout.one_line(fields))
    if "\n" in one_line or "\r" in one_line:
        return "malformed row (line break in a one-line column)"
    at = layout.position.get("Complaint ID")
    if at is not None and malformed_id(fields[at]):
        return "malformed row (Complaint ID not a number)"
    return None


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
    values[features.ID_KEY] = normalize_complaint_id(values[features.ID_KEY]) or ""
    values[features.LABEL_KEY] = label
    return values


def prepare_cfpb_exports(sources: list[Path], destination: Path | str) -> PrepareReport:
    """Write the canonical CSV of all labelled rows of `sources` to `destination`, atomically."""
    problem = output_problem(sources, destination)
    if problem:
        raise ExportError(problem)
    destination = Path(destination)
    report = PrepareReport()
    seen = SeenIds()
    with atomic_write(destination, encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=features.CANONICAL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for source in sources:
            writer.writerows(canonical_rows(source, report, seen))
        if report.rows_kept == 0:
            raise ExportError(f"no labelled rows in {', '.join(map(str, sources))}")
    return report


def prepare_and_report(sources: list[Path], destination: Path | str) -> int:
    """Prepare and print what was done: exit code 0, or 2 with the reason for a bad export."""
    try:
        report = prepare_cfpb_exports(sources, destination)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wrote {destination}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data.prepare",
        description="Turn raw CFPB complaint exports (CSV or complaints.csv.zip) into the "
        "pipeline's canonical CSV: ISO dates, 5-character ZIP codes, label 1/0, "
        "unlabelled rows dropped and counted.",
        epilog="Rows that do not fit the header (broken quotes, wrong number of fields, a line "
        "break in a one-line column, a Complaint ID that is not a number) are dropped and "
        "counted as malformed; every row read is kept or counted once. Refused with exit "
        "code 2 and no output: an output that is an input, a folder (or ends in /) or under a "
        "file; a file that is not a UTF-8 CFPB export (binary, UTF-16, NUL bytes, a column "
        "named twice, a delimiter other than a comma).",
    )
    parser.add_argument("exports", nargs="+", type=Path, help="raw CFPB export(s), CSV or zip")
    parser.add_argument(
        "-o",
        "--output",
        type=str,  # not Path, which drops a trailing slash: "-o out/" names a folder
        required=True,
        help="canonical CSV to write (replaced whole, only when the run succeeds; "
        "not one of the exports)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return prepare_and_report(args.exports, args.output)


if __name__ == "__main__":
    sys.exit(main())
