"""Time of python -m monitoring on a window the size of the bundled sample.

.venv/bin/python benchmarks/monitor_time.py [--output-dir outputs] [--rows 6596] [--repeats 3]

Writes a request log of the bundled sample's rows as the server logs them (plain feature
objects, the pushed model's probabilities), then runs the monitor on it as a scheduler would
(a fresh process, --json and --html), and prints its own breakdown and the wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, markdown_table, pushed_model

from models import features
from pipeline.config import BUNDLED_DATA_DIR, DEFAULT_OUTPUT_DIR, PROJECT_ROOT

BATCH = 64  # examples per logged request, as a batching client sends them


def write_log(model_dir: str, rows: list[dict], directory: Path) -> None:
    import tensorflow as tf

    from pipeline.components.example_gen import row_to_example
    from serving.request_log import Entry, RequestLog

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    log = RequestLog(str(directory), synchronous="OFF")
    known = set(features.RAW_FEATURE_KEYS)
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        examples = [{k: ("bytes", [row[k].encode()]) for k in known} for row in batch]
        serialized = []
        for row in batch:
            example = row_to_example(row)
            del example.features.feature[features.LABEL_KEY]
            serialized.append(example.SerializeToString())
        scores = serve(examples=tf.constant(serialized))[features.PREDICTION_KEY].numpy()
        version = int(Path(model_dir).name)
        entry = Entry(f"bench-{start}", time.time(), "cfpb", version, None, "rest",
                      "serving_default", examples, known, [], {features.PREDICTION_KEY: scores},
                      1.0)  # fmt: skip
        log.append(entry).result()
    log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(DEFAULT_OUTPUT_DIR))
    parser.add_argument("--rows", type=int, help="rows in the window (default: the whole sample)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model_dir, _ = pushed_model(args.output_dir)
    with open(BUNDLED_DATA_DIR / "complaints.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows = rows[: args.rows] if args.rows else rows
    with tempfile.TemporaryDirectory() as folder:
        log_dir = Path(folder) / "request_log"
        write_log(model_dir, rows, log_dir)
        command = [
            sys.executable, "-m", "monitoring", "--output-dir", args.output_dir,
            "--request-log", str(log_dir), "--since", "all",
            "--json", f"{folder}/report.json", "--html", f"{folder}/report.html",
        ]  # fmt: skip
        walls, steps = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT)
            walls.append(time.perf_counter() - started)
            if result.returncode not in (0, 1):
                raise SystemExit(f"monitor failed ({result.returncode}): {result.stderr}")
            report = json.loads(Path(folder, "report.json").read_text())
            steps.append(report["seconds"])
    table = [[step, f"{statistics.median(s[step] for s in steps):.2f}"] for step in steps[0]]
    table.append(["wall time of the process (start, imports, report, page)",
                  f"{statistics.median(walls):.2f}"])  # fmt: skip
    print(f"{machine()}; {len(rows):,} logged predictions, median of {args.repeats} runs")
    print(f"status: {report['status']}; test examples scored: {report['prediction']['test_count']}")
    print(markdown_table(["step", "seconds"], table))
    print(f"spread of wall times: {np.min(walls):.2f} to {np.max(walls):.2f} s")


if __name__ == "__main__":
    main()
