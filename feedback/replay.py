"""Replay complaints from a prepared CSV to a running model server, as REST predict requests.

    python -m feedback.replay --rows data/sample/complaints.csv --limit 400 \\
        --url http://127.0.0.1:8501/v1/models/cfpb --outcomes-out outcomes.csv

Each row is sent as the server's feature objects, complaint_id included, so the request log
holds what the feedback loop joins on. --outcomes-out writes the rows' known labels as an
outcomes file (complaint_id, consumer_disputed): in production those arrive weeks later; here
they stand in for them. Rows without a complaint_id are skipped, unless --new-ids gives every
row a fresh id (900000000 + its row number), as new complaints.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path

import requests

from cli.atomic import atomic_write
from cli.bounds import SEED, add_number, count
from models import features

NEW_ID_OFFSET = 900_000_000
# Complaints per request. A rollout assigns a request's examples to one arm (its first
# complaint's), so an A/B split of replayed traffic is as fine-grained as this: 1 there.
BATCH = 50


def load_rows(path: Path, limit: int | None, seed: int, new_ids: bool) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {features.ID_KEY, features.LABEL_KEY} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} lacks {', '.join(sorted(missing))}: use a prepared CSV")
        rows = list(reader)
    if new_ids:  # every row a new complaint, numbered in file order
        for number, row in enumerate(rows, start=1):
            row[features.ID_KEY] = str(NEW_ID_OFFSET + number)
    with_ids = [row for row in rows if row[features.ID_KEY].isdigit()]
    if len(with_ids) < len(rows):
        print(
            f"{len(rows) - len(with_ids):,} rows without a complaint_id are not replayed "
            "(--new-ids numbers every row)",
            file=sys.stderr,
        )
    if not with_ids:
        raise ValueError(f"{path} has no row with a complaint_id to replay (try --new-ids)")
    if limit is not None and limit < len(with_ids):
        with_ids = random.Random(seed).sample(with_ids, limit)
    return with_ids


def replay(url: str, rows: list[dict], batch_size: int = BATCH) -> int:
    """Post the rows in batches; returns how many were answered."""
    session, answered = requests.Session(), 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        body = {"instances": [{k: r[k] for k in features.RAW_FEATURE_KEYS} for r in batch]}
        response = session.post(f"{url}:predict", json=body, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
        answered += len(batch)
        if sys.stderr.isatty():  # a redrawn line; a log file gets the total only
            print(f"\rreplayed {answered:,}/{len(rows):,}", end="", file=sys.stderr, flush=True)
    print(
        ("\r" if sys.stderr.isatty() else "") + f"replayed {answered:,}/{len(rows):,}",
        file=sys.stderr,
    )
    return answered


def write_outcomes(rows: list[dict], path: Path) -> None:
    with atomic_write(path, newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([features.ID_KEY, features.LABEL_KEY])
        writer.writerows([r[features.ID_KEY], r[features.LABEL_KEY]] for r in rows)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m feedback.replay",
        description=__doc__.split("\n\n", 2)[2].replace("\n", " "),
    )
    parser.add_argument("--rows", type=Path, required=True, help="a prepared CSV to replay")
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8501/v1/models/cfpb",
        help="the model's REST URL (default: %(default)s)",
    )
    add_number(parser, "--limit", bounds=count(), help="replay this many rows, drawn at random")
    add_number(parser, "--seed", bounds=SEED, default=0, help="seed of that draw (default 0)")
    add_number(
        parser,
        "--batch-size",
        bounds=count(1, 10_000, meaning="complaints per request"),
        default=BATCH,
        help="complaints per request (default %(default)s); a traffic split assigns each "
        "request by its first complaint, so use 1 to split replayed traffic complaint by "
        "complaint",
    )
    parser.add_argument(
        "--new-ids", action="store_true", help="number every row as a new complaint"
    )
    parser.add_argument("--outcomes-out", type=Path, help="write the rows' outcomes here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        rows = load_rows(args.rows, args.limit, args.seed, args.new_ids)
        replay(args.url, rows, args.batch_size)
    except (OSError, ValueError, RuntimeError, requests.RequestException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.outcomes_out:
        write_outcomes(rows, args.outcomes_out)
    print(f"replayed {len(rows):,} complaints in {time.perf_counter() - started:.1f}s", end="")
    print(f"; outcomes in {args.outcomes_out}" if args.outcomes_out else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
