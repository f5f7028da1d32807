"""Beam DirectRunner modes side by side: in_memory vs multi_processing with 2 workers.

    .venv/bin/python benchmarks/beam_modes.py [--multiples 1 16 64]

The bundled sample replicated (as scaling.py does), a small fixed training budget (the data
path is what differs), a fresh output folder per run so nothing comes from cache.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import DATA_HEAVY, machine, markdown_table, run_pipeline
from scaling import FIXED_TRAINING, replicate

MODES = {
    "in_memory": ["--direct_running_mode", "in_memory", "--direct_num_workers", "1"],
    "multi_processing, 2 workers": [
        "--direct_running_mode",
        "multi_processing",
        "--direct_num_workers",
        "2",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multiples", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="cfpb-modes-"))
    print(f"Machine: {machine()}\n")
    for multiple in args.multiples:
        data_file, rows = replicate(multiple, workspace / f"data-{multiple}x")
        runs = {
            mode: run_pipeline(
                "--data-dir",
                str(data_file.parent),
                "--output-dir",
                str(workspace / f"out-{multiple}x-{mode.split(',')[0]}"),
                *flags,
                *FIXED_TRAINING,
            )
            for mode, flags in MODES.items()
        }
        data_file.unlink()
        table = [
            [name]
            + [
                f"{r.components[name].seconds:.1f} s, {r.components[name].peak_rss_mib:.0f} MiB"
                for r in runs.values()
            ]
            for name in DATA_HEAVY
        ]
        table.append(["whole run (wall)"] + [f"{r.wall_seconds:.1f} s" for r in runs.values()])
        print(f"{rows:,} rows ({multiple}x):\n")
        print(markdown_table(["component", *runs], table) + "\n")


if __name__ == "__main__":
    main()
