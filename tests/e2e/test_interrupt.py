"""Ctrl-C or SIGTERM during a run: the run is marked interrupted at once, not failed.

The signal lands while Transform runs its Beam job, where Beam turns it into an error.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from conftest import TINY_RUN_FLAGS, bundled_rows, running_nodes, write_rows

from lineage import queries
from pipeline import names
from pipeline.config import PROJECT_ROOT, PipelineConfig
from pipeline.metadata import store as lineage


@pytest.mark.parametrize(
    ("signum", "runner"),
    [(signal.SIGINT, "beam_runner.py"), (signal.SIGTERM, "local_runner.py")],
)
def test_a_stopped_run_is_marked_interrupted_not_left_running(signum, runner, tmp_path):
    """'Pipeline stopped.' with no reason, and RUNNING until the next run, before (issue 11)."""
    write_rows(bundled_rows(every=16), tmp_path / "data" / "complaints.csv")
    output_dir = tmp_path / "outputs"
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_ROOT / "runners" / runner),
            *("--data-dir", str(tmp_path / "data"), "--output-dir", str(output_dir)),
            *TINY_RUN_FLAGS,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    console = []
    for line in process.stdout:
        console.append(line)
        if f"{names.TRANSFORM} ..." in line:
            break
    config = PipelineConfig(output_dir=str(output_dir))
    store = lineage.connect(config.metadata_connection_config())
    deadline = time.monotonic() + 120
    while names.TRANSFORM not in running_nodes(store, config.pipeline_name):
        assert process.poll() is None and time.monotonic() < deadline, "".join(console)
        time.sleep(0.2)
    process.send_signal(signum)
    console.append(process.communicate(timeout=300)[0])
    text = "".join(console)
    assert process.returncode == 130, text[-3000:]
    assert "Pipeline interrupted" in text and "marked CANCELED" in text
    assert "Traceback" not in text

    (summary,) = queries.run_summaries(store, config.pipeline_name)
    assert summary.status == "INTERRUPTED"
    # Stopped where the signal landed: inside Transform, or (if a step swallowed it) before
    # the next component starts; never run to the end.
    assert names.PUSHER not in summary.executed and names.EXAMPLE_GEN in summary.executed
    assert {r.state for r in summary.executions} <= {"COMPLETE", "CACHED", "CANCELED"}
