"""How pipeline time grows with data: the bundled sample replicated 1x, 4x, 16x, 64x.

    .venv/bin/python benchmarks/scaling.py [--multiples 1 4 16 64]

Replicated rows get fresh complaint ids (so they hash to splits independently); everything
else is the real rows repeated. Training and tuning steps stay fixed, so the data path is
what grows. pyarrow reading the same CSV is the ceiling for ExampleGen.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
from common import DATA_HEAVY, machine, markdown_table, run_pipeline
from pyarrow import csv as arrow_csv

from pipeline.config import BUNDLED_DATA_DIR

FIXED_TRAINING = ["--tuner-trials", "1", "--tuner-train-steps", "50", "--train-steps", "100"]
ID_OFFSET = 10_000_000  # above every real complaint id
FULL_DATABASE_ROWS = 770_000  # labelled CFPB complaints, until disputes stopped in 2017


def replicate(multiple: int, folder: Path) -> tuple[Path, int]:
    """The bundled sample `multiple` times, copy k's complaint ids shifted by k * ID_OFFSET."""
    with open(BUNDLED_DATA_DIR / "complaints.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / "complaints.csv"
    with open(output, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for copy in range(multiple):
            for row in rows:
                if copy and row["complaint_id"]:
                    row = {**row, "complaint_id": str(int(row["complaint_id"]) + copy * ID_OFFSET)}
                writer.writerow(row)
    return output, multiple * len(rows)


def arrow_rows_per_second(path: Path) -> float:
    options = arrow_csv.ParseOptions(newlines_in_values=True)
    started = time.perf_counter()
    table = arrow_csv.read_csv(path, parse_options=options)
    return table.num_rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 4, 16, 64])
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="cfpb-scaling-"))
    sizes, seconds, arrow = [], {name: [] for name in DATA_HEAVY}, []
    walls, peaks = [], []
    for multiple in args.multiples:
        data_file, rows = replicate(multiple, workspace / f"data-{multiple}x")
        arrow.append(arrow_rows_per_second(data_file))
        run = run_pipeline(
            "--data-dir",
            str(data_file.parent),
            "--output-dir",
            str(workspace / f"out-{multiple}x"),
            *FIXED_TRAINING,
        )
        sizes.append(rows)
        walls.append(run.wall_seconds)
        peaks.append(max(c.peak_rss_mib for c in run.components.values()))
        for name in DATA_HEAVY:
            seconds[name].append(run.components[name].seconds)
        data_file.unlink()  # a 64x copy is ~300 MB

    print(f"Machine: {machine()}\n")
    print("Seconds per 1,000 rows (rows are the bundled sample replicated with fresh ids):\n")
    header = [
        "rows",
        *DATA_HEAVY,
        "whole run (wall, s)",
        "ExampleGen rows/s",
        "pyarrow read rows/s",
        "peak memory (MiB)",
    ]
    table = []
    for i, rows in enumerate(sizes):
        per_k = [f"{seconds[n][i] / rows * 1000:.2f}" for n in DATA_HEAVY]
        table.append(
            [
                f"{rows:,}",
                *per_k,
                f"{walls[i]:.0f}",
                f"{rows / seconds['ExampleGen'][i]:,.0f}",
                f"{arrow[i]:,.0f}",
                f"{peaks[i]:,.0f}",
            ]
        )
    print(markdown_table(header, table))

    if len(sizes) < 2:
        return  # a fit needs two sizes
    print("\nLinear fit, seconds = fixed + slope x rows (least squares over the sizes):\n")
    fit_rows = []
    for name, measured in [*seconds.items(), ("whole run (wall)", walls)]:
        slope, fixed = np.polyfit(sizes, measured, 1)
        predicted = np.polyval([slope, fixed], sizes)
        residual = np.sum((np.array(measured) - predicted) ** 2)
        total = np.sum((np.array(measured) - np.mean(measured)) ** 2) or 1.0
        growth = measured[-1] / measured[-2] if len(sizes) > 1 else float("nan")
        fit_rows.append(
            [
                name,
                f"{fixed:.1f}",
                f"{slope * 1000:.3f}",
                f"{1 - residual / total:.3f}",
                f"{growth:.2f} for {sizes[-1] / sizes[-2]:.0f}x rows" if len(sizes) > 1 else "-",
                f"{fixed + slope * FULL_DATABASE_ROWS:.0f}",
            ]
        )
    print(
        markdown_table(
            [
                "component",
                "fixed (s)",
                "slope (s per 1,000 rows)",
                "R²",
                "time ratio, last two sizes",
                f"projected at {FULL_DATABASE_ROWS:,} rows (s)",
            ],
            fit_rows,
        )
    )


if __name__ == "__main__":
    main()
