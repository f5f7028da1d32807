"""The Evaluator's time at 1x and 16x the bundled rows, for this checkout and another one.

    .venv/bin/python benchmarks/evaluator_time.py [--multiples 1 16] [--before DIR]

Each multiple is a first run in a fresh output folder with scaling.py's fixed training, so
only the data grows. --before runs another checkout's runner (say, a worktree of the commit
before a change to the Evaluator) with this interpreter, so both are measured in one session.
The Evaluator's time is read from MLMD; for this checkout the run log also says how much of
it the bootstrap intervals took.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, markdown_table
from scaling import FIXED_TRAINING, replicate

from lineage import queries
from pipeline import names
from pipeline.config import PROJECT_ROOT, PipelineConfig
from pipeline.metadata import store as lineage_store

INTERVALS = re.compile(r"intervals and blessing in ([\d.]+) s")


def evaluator_seconds(project: Path, data_dir: Path, output_dir: Path) -> tuple[float, str]:
    """(the Evaluator's seconds, the intervals' seconds or '-') of one first run."""
    done = subprocess.run(
        [sys.executable, "runners/beam_runner.py", "--data-dir", str(data_dir)]
        + ["--output-dir", str(output_dir), *FIXED_TRAINING],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{project} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    store = lineage_store.connect(
        PipelineConfig(output_dir=output_dir).metadata_connection_config()
    )
    (summary,) = queries.run_summaries(store, PipelineConfig().pipeline_name)
    (record,) = [e for e in summary.executions if e.node_id == names.EVALUATOR]
    logs = "".join(path.read_text() for path in (output_dir / "logs").glob("*.log"))
    found = INTERVALS.search(logs)
    return record.seconds, found.group(1) if found else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--before", type=Path, help="another checkout to measure first")
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="cfpb-evaluator-"))
    projects = [("before", args.before.resolve())] if args.before else []
    projects.append(("after", PROJECT_ROOT))
    rows = []
    for multiple in args.multiples:
        data_dir = workspace / f"data-{multiple}x"
        _, rows_in = replicate(multiple, data_dir)
        for label, project in projects:
            revision = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=project, capture_output=True, text=True
            ).stdout.strip()
            output_dir = workspace / f"{label}-{multiple}x"
            seconds, intervals = evaluator_seconds(project, data_dir, output_dir)
            print(f"{multiple}x {label} ({revision}): {seconds:.1f} s", file=sys.stderr)
            rows.append([f"{multiple}x ({rows_in:,} rows)", f"{label} ({revision})",
                         f"{seconds:.1f}", intervals])  # fmt: skip
    print(f"Machine: {machine()}\n")
    print(markdown_table(["data", "checkout", "Evaluator s", "of which intervals s"], rows))


if __name__ == "__main__":
    main()
