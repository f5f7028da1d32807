"""What every benchmark shares: the machine, markdown tables, and a monitored pipeline run."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from pipeline import names
from pipeline.config import PROJECT_ROOT

RUNNER = PROJECT_ROOT / "runners" / "beam_runner.py"
SAMPLE_SECONDS = 0.2
DATA_HEAVY = (names.EXAMPLE_GEN, names.STATISTICS_GEN, names.TRANSFORM, names.EVALUATOR)


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{datetime.date.today()}, {os.cpu_count()} cores, {memory:.0f} GiB, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class ComponentRun:
    seconds: float = 0.0
    peak_rss_mib: float = 0.0  # of the runner and its children while the component ran
    cached: bool = False


@dataclass
class PipelineRun:
    wall_seconds: float
    components: dict[str, ComponentRun] = field(default_factory=dict)
    console: str = ""


def tree_rss_mib(process: psutil.Process) -> float:
    """Resident memory of a process and all its children (Beam workers, executors)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def run_pipeline(*flags: str) -> PipelineRun:
    """Run beam_runner.py, sampling memory; component times and cache states come from MLMD."""
    from lineage import queries
    from pipeline.metadata import store as lineage_store
    from runners.local_run import parse_arguments

    config = parse_arguments(list(flags), "BeamDagRunner")  # the runner itself checks them
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(RUNNER), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    watched = psutil.Process(process.pid)
    samples: list[tuple[float, float]] = []  # (epoch milliseconds, MiB)
    stop = threading.Event()

    def sample_memory() -> None:
        while not stop.is_set() and process.poll() is None:
            samples.append((time.time() * 1000, tree_rss_mib(watched)))
            stop.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    lines = []
    for line in process.stdout:
        lines.append(line)
        print(line, end="", file=sys.stderr, flush=True)  # progress for the person waiting
    process.wait()
    stop.set()
    sampler.join()
    result = PipelineRun(wall_seconds=time.monotonic() - started, console="".join(lines))
    if process.returncode != 0:
        raise RuntimeError(
            f"pipeline failed (exit {process.returncode}):\n{result.console[-3000:]}"
        )
    store = lineage_store.connect(config.metadata_connection_config())
    run_id = lineage_store.run_ids(store, config.pipeline_name)[-1]
    for record in queries.run_summary(store, run_id).executions:
        begin = record.execution.create_time_since_epoch
        end = record.execution.last_update_time_since_epoch
        result.components[record.node_id] = ComponentRun(
            seconds=record.seconds,
            peak_rss_mib=max((mib for t, mib in samples if begin <= t <= end), default=0.0),
            cached=record.cached,
        )
    return result


def pushed_model(output_dir: str) -> tuple[str, str]:
    """(pushed SavedModel folder, Examples artifact URI it was trained on) from the MLMD store."""
    from lineage import queries
    from pipeline.config import PipelineConfig
    from pipeline.metadata import store as lineage_store

    config = PipelineConfig(output_dir=output_dir)
    if not config.metadata_path.is_file():
        raise SystemExit(f"no pipeline run in {output_dir}: run ./run.sh first (or --output-dir)")
    store = lineage_store.connect(config.metadata_connection_config())
    found = queries.trace(store, "latest-pushed")
    return found["pushed"][-1]["destination"], found["examples"]["uri"]


def serialized_examples(examples_uri: str, split: str) -> list[bytes]:
    """The serialized tf.Examples of one split of an ExampleGen output."""
    import tensorflow as tf

    files = sorted(str(p) for p in Path(examples_uri, f"Split-{split}").glob("*.gz"))
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]
