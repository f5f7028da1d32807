"""Default run on the bundled sample: first run, cached rerun, rerun with new training steps.

    .venv/bin/python benchmarks/pipeline_time.py [--output-dir DIR]

Prints a markdown table: seconds and peak memory (the runner and its workers) per component.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", help="where the runs write (default: a new temp folder)")
    args = parser.parse_args()
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="cfpb-bench-")
    flags = ["--output-dir", output_dir]
    first = run_pipeline(*flags)
    rerun = run_pipeline(*flags)
    retrain = run_pipeline(*flags, "--train-steps", str(CHANGED_TRAIN_STEPS))

    names = list(first.components)
    rows = [[n, cell(first, n, memory=True), cell(rerun, n), cell(retrain, n)] for n in names]
    rows.append(
        ["**wall time**"] + [f"**{r.wall_seconds:.1f} s**" for r in (first, rerun, retrain)]
    )
    print(f"Machine: {machine()}\n")
    print(
        markdown_table(
            [
                "component",
                "first run (time, peak memory)",
                "cached rerun",
                f"rerun with --train-steps {CHANGED_TRAIN_STEPS}",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
