"""Beam DirectRunner modes side by side: in_memory vs multi_processing with 2 workers.

    .venv/bin/python benchmarks/beam_modes.py

Same bundled data, a small fixed training budget (the data path is what differs), a fresh
output folder per mode so nothing comes from cache.
"""

from __future__ import annotations

import tempfile

from common import DATA_HEAVY, machine, markdown_table, run_pipeline

SMALL_TRAINING = ["--tuner-trials", "1", "--tuner-train-steps", "50", "--train-steps", "100"]
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
    runs = {
        mode: run_pipeline(
            "--output-dir", tempfile.mkdtemp(prefix="cfpb-modes-"), *flags, *SMALL_TRAINING
        )
        for mode, flags in MODES.items()
    }
    rows = [
        [name]
        + [
            f"{r.components[name].seconds:.1f} s, {r.components[name].peak_rss_mib:.0f} MiB"
            for r in runs.values()
        ]
        for name in DATA_HEAVY
    ]
    rows.append(["whole run (wall)"] + [f"{r.wall_seconds:.1f} s" for r in runs.values()])
    print(f"Machine: {machine()}\n")
    print(markdown_table(["component", *runs], rows))


if __name__ == "__main__":
    main()
