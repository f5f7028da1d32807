"""Split a prepared CSV in two by date: older complaints to train on, newer ones to serve.

    python -m data.split data/sample/complaints.csv --before 2015-10-01 \\
        --older loop/data/span-1/complaints.csv --newer loop/later.csv

The feedback-loop walkthrough uses it to stand in for time: a model trained on the older
complaints serves the newer ones, whose outcomes then arrive. Both files are written whole or
not at all, with the input's columns; multi-line narratives stay whole.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import sys
from pathlib import Path

from cli.atomic import atomic_write
from models import features

csv.field_size_limit(sys.maxsize)


def split(source: Path, before: str, older: Path, newer: Path) -> tuple[int, int]:
    with open(source, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if features.DATE_KEY not in (reader.fieldnames or []):
            raise ValueError(f"{source} has no {features.DATE_KEY} column: use a prepared CSV")
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    parts = {older: [], newer: []}
    for row in rows:
        parts[older if row[features.DATE_KEY] < before else newer].append(row)
    for path, part in parts.items():
        if not part:
            raise ValueError(f"no complaint would go to {path}: choose another --before date")
    for path, part in parts.items():
        with atomic_write(path, newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(part)
    return len(parts[older]), len(parts[newer])


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data.split", description=__doc__.split("\n\n", 2)[2].replace("\n", " ")
    )
    parser.add_argument("source", type=Path, help="a prepared CSV (python -m data.prepare)")
    parser.add_argument(
        "--before",
        required=True,
        help="ISO date: complaints received earlier go to --older, the rest to --newer",
    )
    parser.add_argument("--older", type=Path, required=True, help="CSV of the older complaints")
    parser.add_argument("--newer", type=Path, required=True, help="CSV of the newer complaints")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        datetime.date.fromisoformat(args.before)
        counts = split(args.source, args.before, args.older, args.newer)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{counts[0]:,} complaints before {args.before} -> {args.older}")
    print(f"{counts[1]:,} from {args.before} on -> {args.newer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
