"""Running the pipeline and the lineage command as subprocesses, for the e2e tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import TINY_RUN_FLAGS

from pipeline.config import PROJECT_ROOT


def run_pipeline(
    data_dir: Path, output_dir: Path, *flags: str, expect_code: int = 0
) -> subprocess.CompletedProcess:
    """A tiny Beam run of data_dir into output_dir, `flags` after the tiny ones (so they win);
    asserts it exits with expect_code, showing the output's tail if not."""
    command = [
        sys.executable, str(PROJECT_ROOT / "runners" / "beam_runner.py"),
        "--data-dir", str(data_dir), "--output-dir", str(output_dir), *TINY_RUN_FLAGS, *flags,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    # pytest does not rewrite asserts here (not a test module): the message names both codes.
    assert result.returncode == expect_code, (
        f"exit code {result.returncode}, expected {expect_code}\n"
        + result.stdout[-3000:]
        + result.stderr[-3000:]
    )
    return result


def lineage_command(output_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m lineage --output-dir output_dir ARGS` from the project folder."""
    command = [sys.executable, "-m", "lineage", "--output-dir", str(output_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT)
