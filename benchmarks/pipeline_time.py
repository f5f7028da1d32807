"""Default run on the bundled sample: first run, cached reruns, rerun with new training steps.

The first cached rerun starts TFX (--skip-cache-check), which finds every component in its
cache; the second is the runner's check before TFX starts (runners/cache_check.py).

    .venv/bin/python benchmarks/pipeline_time.py [--output-dir DIR]

Prints a markdown table: seconds and peak memory (the runner and its workers) per component.
"""

from __future__ import annotations

import argparse
import re
import tempfile

from common import PipelineRun, machine, markdown_table, run_pipeline

from pipeline.config import PipelineConfig

CHANGED_TRAIN_STEPS = PipelineConfig.train_steps + 100


def cell(run: PipelineRun, name: str, memory: bool = False) -> str:
    component = run.components.get(name)
    if component is None:
        return "-"
    text = "cached" if component.cached else f"{component.seconds:.1f} s"
    if not memory:
        return text
    peak = f"{component.peak_rss_mib:.0f} MiB" if component.peak_rss_mib else "too short to sample"
    return f"{text}, {peak}"


def pipeline_wall(run: PipelineRun) -> str:
    found = re.search(r"Pipeline finished in ([\d.]+)s", run.console)
    return f"{float(found.group(1)):.1f} s" if found else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", help="where the runs write (default: a new temp folder)")
    args = parser.parse_args()
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="cfpb-bench-")
    flags = ["--output-dir", output_dir]
    first = run_pipeline(*flags)
    rerun = run_pipeline(*flags, "--skip-cache-check")
    again = run_pipeline(*flags)
    retrain = run_pipeline(*flags, "--train-steps", str(CHANGED_TRAIN_STEPS))
    runs = (first, rerun, again, retrain)

    names = list(first.components)
    rows = [
        [n, cell(first, n, memory=True), cell(rerun, n), "not started", cell(retrain, n)]
        for n in names
    ]
    rows.append(
        ["pipeline wall (the runner's 'Pipeline finished in')"] + [pipeline_wall(r) for r in runs]
    )
    rows.append(["**wall time, process**"] + [f"**{r.wall_seconds:.1f} s**" for r in runs])
    print(f"Machine: {machine()}\n")
    print(
        markdown_table(
            [
                "component",
                "first run (time, peak memory)",
                "cached rerun, TFX (--skip-cache-check)",
                "cached rerun (checked before TFX)",
                f"rerun with --train-steps {CHANGED_TRAIN_STEPS}",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
