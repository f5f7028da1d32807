"""One turn of the feedback loop, by step, and the feedback join on a million logged requests.

    .venv/bin/python benchmarks/feedback_loop.py [--requests 1000000] [--skip-loop]

The join: a request log of N synthetic records in the server's own format (serving.request_log's
table; features from the bundled sample's rows, narrative left out as --log_features=no_text
does, fresh complaint ids), 80% of them with an outcome. Generated in a temporary folder and
deleted; never committed.

The loop: span 1 is the bundled sample (trained once, not timed). Its 6,596 complaints come back
as new ones in the request log; then, timed: feedback.join writes span 2, monitoring.monitor
checks the logged traffic, and the pipeline (default settings) trains on span 2.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, markdown_table, run_pipeline  # noqa: E402
from data import spans  # noqa: E402
from feedback import join as feedback  # noqa: E402
from models import features  # noqa: E402
from pipeline.config import BUNDLED_DATA_DIR  # noqa: E402
from serving import request_log  # noqa: E402

OUTCOME_SHARE = 0.8


def sample_rows() -> list[dict]:
    with open(BUNDLED_DATA_DIR / "complaints.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def synthetic_log(folder: Path, rows: list[dict], count: int, keep_text: bool) -> Path:
    """`count` logged requests in the server's format, cycling through `rows`, new ids."""
    folder.mkdir(parents=True)
    connection = sqlite3.connect(folder / request_log.FILE_NAME)
    connection.executescript(request_log.SCHEMA)
    connection.executemany(
        "INSERT INTO log_info VALUES (?, ?)",
        [("format", request_log.FORMAT), ("log_features", "all" if keep_text else "no_text")],
    )
    kept = [k for k in features.RAW_FEATURE_KEYS if keep_text or k != features.TEXT_KEY]
    encoded = [orjson.dumps({k: r[k] for k in kept}).decode() for r in rows]
    columns = ", ".join(request_log.COLUMNS)
    insert = f"INSERT INTO predictions ({columns}) VALUES ({', '.join('?' * 14)})"
    for start in range(0, count, 100_000):
        batch = range(start, min(count, start + 100_000))
        connection.executemany(
            insert,
            (
                (
                    f"r{i}",
                    0,
                    "2026-11-25T00:00:00.000Z",
                    "cfpb",
                    1,
                    None,
                    "rest",
                    "serving_default",
                    str(10**9 + i),
                    encoded[i % len(rows)],
                    None,
                    0.2,
                    '{"dispute_probability":0.2}',
                    1.0,
                )
                for i in batch
            ),
        )
        connection.commit()
        print(f"\rlogged {batch.stop:,}/{count:,}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    connection.close()
    return folder


def outcomes_for(rows: list[dict], count: int, path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([features.ID_KEY, features.LABEL_KEY])
        for i in range(int(count * OUTCOME_SHARE)):
            writer.writerow([10**9 + i, rows[i % len(rows)][features.LABEL_KEY]])
    return path


def join_benchmark(count: int, scratch: Path) -> list:
    rows = sample_rows()
    log = synthetic_log(scratch / "log", rows, count, keep_text=False)
    outcomes = outcomes_for(rows, count, scratch / "outcomes.csv")
    started = time.perf_counter()
    result = feedback.run_feedback(log, outcomes, scratch / "data")
    seconds = time.perf_counter() - started
    size = (log / request_log.FILE_NAME).stat().st_size / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux
    return [
        f"{count:,}",
        f"{size:,.0f}",
        f"{result.counts.joined:,}",
        f"{seconds:.1f}",
        f"{count / seconds:,.0f}",
        f"{peak:,.0f}",
    ]


def loop_benchmark(scratch: Path) -> list[list]:
    rows = sample_rows()
    data, out = scratch / "loop" / "data", scratch / "loop" / "outputs"
    (data / "span-1").mkdir(parents=True)
    (data / "span-1" / spans.SPAN_CSV).write_bytes(
        (BUNDLED_DATA_DIR / "complaints.csv").read_bytes()
    )
    flags = [
        "--data-dir",
        str(data),
        "--input-pattern",
        spans.SPAN_PATTERN,
        "--output-dir",
        str(out),
    ]
    print("span 1: training the first model (not timed)", file=sys.stderr)
    run_pipeline(*flags)
    log = synthetic_log(scratch / "loop" / "request_log", rows, len(rows), keep_text=True)
    outcomes = outcomes_for(rows, len(rows), scratch / "loop" / "outcomes.csv")
    steps = []
    started = time.perf_counter()
    feedback.run_feedback(log, outcomes, data)
    steps.append(["feedback.join (span 2)", time.perf_counter() - started])
    started = time.perf_counter()
    monitor = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring.monitor",
            "--request-log",
            str(log),
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    steps.append([f"monitoring.monitor (exit {monitor.returncode})", time.perf_counter() - started])
    run = run_pipeline(*flags)
    steps.append(["pipeline on span 2 (default settings)", run.wall_seconds])
    total = sum(seconds for _, seconds in steps)
    return [[name, f"{seconds:.1f}", f"{100 * seconds / total:.1f}%"] for name, seconds in steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000, help="logged requests to join")
    parser.add_argument("--skip-loop", action="store_true", help="only the join benchmark")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="feedback-bench-") as scratch:
        join = join_benchmark(args.requests, Path(scratch) / "join")
        loop = None if args.skip_loop else loop_benchmark(Path(scratch))
    print(f"Machine: {machine()}\n")
    print("Feedback join (`feedback.join` on a synthetic request log)\n")
    header = ["logged requests", "log MiB", "rows joined", "seconds", "requests/s", "peak RSS MiB"]
    print(markdown_table(header, [join]))
    if loop:
        print("\nOne loop iteration, by step\n")
        print(markdown_table(["step", "seconds", "share"], loop))


if __name__ == "__main__":
    main()
