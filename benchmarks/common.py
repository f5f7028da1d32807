"""What every benchmark shares: the machine, markdown tables, and a monitored pipeline run."""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
RUNNER = PROJECT_ROOT / "runners" / "beam_runner.py"
STARTED = re.compile(r"^\[\s*\d+/\d+\] (\S+) \.\.\.$")
FINISHED = re.compile(r"^\s+(\S+) finished in ")
SAMPLE_SECONDS = 0.2
DATA_HEAVY = ("ExampleGen", "StatisticsGen", "Transform", "Evaluator")


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
    """Run beam_runner.py; time each component from its progress lines, sample memory."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(RUNNER), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    watched = psutil.Process(process.pid)
    result = PipelineRun(wall_seconds=0.0)
    current: list[str] = []
    begun: dict[str, float] = {}
    stop = threading.Event()

    def sample_memory() -> None:
        while not stop.is_set():
            rss = tree_rss_mib(watched) if process.poll() is None else 0.0
            for name in list(current):
                component = result.components.setdefault(name, ComponentRun())
                component.peak_rss_mib = max(component.peak_rss_mib, rss)
            stop.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    lines = []
    for line in process.stdout:
        lines.append(line)
        print(line, end="", file=sys.stderr, flush=True)  # progress for the person waiting
        if match := STARTED.match(line.rstrip()):
            current.append(match.group(1))
            begun[match.group(1)] = time.monotonic()
        elif match := FINISHED.match(line.rstrip()):
            name = match.group(1)
            if name in current:
                current.remove(name)
            component = result.components.setdefault(name, ComponentRun())
            component.seconds = time.monotonic() - begun.get(name, time.monotonic())
    process.wait()
    stop.set()
    sampler.join()
    result.wall_seconds = time.monotonic() - started
    result.console = "".join(lines)
    if process.returncode != 0:
        raise RuntimeError(
            f"pipeline failed (exit {process.returncode}):\n{result.console[-3000:]}"
        )
    for line in result.console.splitlines():  # the runner's summary table says what was cached
        parts = line.split()
        if len(parts) == 4 and parts[0] in result.components and parts[2] == "cached":
            result.components[parts[0]].cached = True
    return result


def pushed_model(output_dir: str) -> tuple[str, str]:
    """(pushed SavedModel folder, Examples artifact URI it was trained on) from the MLMD store."""
    from pipeline import lineage
    from pipeline.config import PipelineConfig

    config = PipelineConfig(output_dir=output_dir)
    if not config.metadata_path.is_file():
        raise SystemExit(f"no pipeline run in {output_dir}: run ./run.sh first (or --output-dir)")
    store = lineage.connect(config.metadata_connection_config())
    found = lineage.trace(store, "latest-pushed")
    return found["pushed"][-1]["destination"], found["examples"]["uri"]


def serialized_examples(examples_uri: str, split: str) -> list[bytes]:
    """The serialized tf.Examples of one split of an ExampleGen output."""
    import tensorflow as tf

    files = sorted(str(p) for p in Path(examples_uri, f"Split-{split}").glob("*.gz"))
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]
