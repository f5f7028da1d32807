"""The local run that runners/beam_runner.py and runners/local_runner.py share.

Flags from PipelineConfig; one run per output folder at a time (a lock); executions a killed
run left unfinished are marked CANCELED; one line per component as it runs, then a summary
table, the eval metrics, the blessing and the push destination. The full log goes to
<output-dir>/logs/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import logging
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ log noise; errors still raise in Python
warnings.filterwarnings("ignore", category=FutureWarning)  # dependencies' notices, not ours

from pipeline import config as pipeline_config  # noqa: E402
from pipeline import preflight  # noqa: E402

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
NODE_EVENT = re.compile(r"(?:node|Component) (\S+) is (running|finished)\.")


class ProgressPrinter(logging.Handler):
    """Turns TFX's 'node X is running/finished' log lines into one console line each."""

    def __init__(self, total: int, console: TextIO, interruption: Interruption | None = None):
        super().__init__(logging.INFO)
        self.total, self.done, self.started, self.console = total, 0, {}, console
        self.interruption = interruption

    def emit(self, record: logging.LogRecord) -> None:
        match = NODE_EVENT.search(record.getMessage())
        if not match:
            return
        node, event = match.groups()
        if event == "running":
            if self.interruption is not None and self.interruption.signalled:
                raise KeyboardInterrupt  # a signal a component swallowed: start nothing more
            self.started[node] = time.monotonic()
            print(f"[{self.done + 1:2d}/{self.total}] {node} ...", file=self.console, flush=True)
        else:
            self.done += 1
            seconds = time.monotonic() - self.started.get(node, time.monotonic())
            print(f"        {node} finished in {seconds:.1f}s", file=self.console, flush=True)


def make_parser(runner: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=f"Run the CFPB dispute pipeline (ExampleGen to Pusher) with TFX's {runner}. "
        "Data-heavy components run on Apache Beam. Unchanged components are reused from the "
        "MLMD cache.",
    )
    pipeline_config.add_config_arguments(parser)
    parser.add_argument(
        "--skip-cache-check",
        action="store_true",
        help="start TFX even when nothing changed since the last run (settings, the files they "
        "name, code, library versions, the MLMD store); by default such a rerun reports that "
        "run without starting TFX",
    )
    return parser


def parse_arguments(argv: list[str] | None, runner: str) -> pipeline_config.PipelineConfig:
    """The flags as a PipelineConfig, without checking them (see main)."""
    return pipeline_config.config_from_arguments(make_parser(runner).parse_args(argv))


def log_to_file(output_dir: Path) -> Path:
    """Send every log record (TFX, Beam, TensorFlow) to a file; the console gets progress."""
    import tensorflow as tf
    from absl import logging as absl_logging

    log_dir = output_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"run-{datetime.datetime.now():%Y%m%d-%H%M%S}.log"
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    pipeline_config.redact_passwords_in_logs(handler)
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logging.use_python_logging()
    logging.captureWarnings(True)
    tf.get_logger().handlers = []
    tf.get_logger().propagate = True
    return log_path


@contextlib.contextmanager
def exclusive_run(config: pipeline_config.PipelineConfig) -> Iterator[None]:
    """One run of a pipeline at a time per output folder: a lock file, freed even on SIGKILL."""
    if pipeline_config.is_uri(config.output_dir):  # remote output: the orchestrator's job
        yield
        return
    lock_path = Path(config.output_dir) / f".{config.pipeline_name}.lock"
    with open(lock_path, "a") as lock:  # "a": the other run's lock file stays as it is
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"Another run of {config.pipeline_name} is using {config.output_dir} "
                f"(lock {lock_path}); wait for it to finish."
            ) from None
        yield


def make_dag_runner(runner: str):
    """TFX's BeamDagRunner (components as stages of one Beam job) or LocalDagRunner (in turn)."""
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    return {"BeamDagRunner": BeamDagRunner, "LocalDagRunner": LocalDagRunner}[runner]()


def main(argv: list[str] | None = None, runner: str = "BeamDagRunner") -> int:
    parser = make_parser(runner)
    args = parser.parse_args(argv)
    config = pipeline_config.config_from_arguments(args)
    for problem in preflight.setting_problems(config) + preflight.output_problems(config):
        parser.error(problem)  # exit 2
    # The lock comes before the data is read, TensorFlow loads or a log file is written, so a
    # second run into the same folder is refused at once and leaves nothing behind.
    with exclusive_run(config):
        for problem in preflight.data_problems(config) + preflight.store_problems(config):
            parser.error(problem)
        return run_locked(config, runner, cache_check=not args.skip_cache_check)


def run_locked(
    config: pipeline_config.PipelineConfig, runner: str, cache_check: bool = True
) -> int:
    from lineage import report
    from pipeline.metadata import recovery
    from pipeline.metadata import store as lineage_store
    from runners import cache_check as checks

    try:  # before the graph is built: whether to tune is read from the store
        store = lineage_store.connect(config.metadata_connection_config())
    except Exception as error:  # noqa: BLE001 (MLMD raises its own status errors)
        print(f"error: cannot open the MLMD store: {first_line(error)}", file=sys.stderr)
        return 2
    print(f"Pipeline {config.pipeline_name}: data {config.data_dir}, output {config.output_dir}")
    print_id = checks.fingerprint(config)
    unchanged = checks.unchanged_run(config, store, print_id) if cache_check else None
    if unchanged:  # before TensorFlow and TFX load: most of a cached rerun's time
        print(
            f"Nothing changed since run {unchanged} (settings, the files they name, code, "
            "library versions, the MLMD store): every component would come from the cache, so "
            "TFX was not started (--skip-cache-check starts it).\n"
        )
        print(report.run_report(store, unchanged))
        return 0
    newest_before = checks.newest_execution_id(store)  # what this run adds comes after it
    from pipeline.pipeline import create_pipeline

    previous_handlers = logging.getLogger().handlers[:]
    log_path = log_to_file(Path(config.output_dir))
    tfx_pipeline = create_pipeline(config)
    interruption = Interruption()
    progress = ProgressPrinter(len(tfx_pipeline.components), sys.stdout, interruption)
    logging.getLogger().addHandler(progress)
    print(f"Full log: {log_path}", flush=True)
    started = time.monotonic()
    root = str(config.pipeline_root)
    runs_before = set(lineage_store.run_ids(store, config.pipeline_name))
    try:
        cancelled = recovery.cancel_interrupted(store, config.pipeline_name, root)
        if cancelled:
            print(
                f"An earlier run was interrupted: {len(cancelled)} unfinished execution(s) "
                "marked CANCELED; completed components are reused from the cache."
            )
        # What components print (Keras, KerasTuner) goes to the log, not the console.
        with (
            open(log_path, "a") as log_file,
            contextlib.redirect_stdout(log_file),
            interruption.catching(),
        ):
            make_dag_runner(runner).run(tfx_pipeline)
            if interruption.signalled:  # caught and swallowed inside the last component
                raise KeyboardInterrupt
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 (report any failure plainly)
        this_run = [
            r for r in lineage_store.run_ids(store, config.pipeline_name) if r not in runs_before
        ]
        if interruption.signalled or isinstance(error, KeyboardInterrupt):
            stopped = recovery.cancel_interrupted(store, config.pipeline_name, root)
            if this_run:  # a step Beam was running records the interrupt as a failure
                stopped += recovery.cancel_run(store, this_run[-1])
            print(
                f"\nPipeline interrupted (Ctrl-C or SIGTERM): {len(set(stopped))} execution(s) "
                "marked CANCELED. Run again to resume; completed components come from the cache.",
                file=sys.stderr,
            )
            return 130
        try:
            why = report.failure_report(store, this_run[-1]) if this_run else ""
        except Exception:  # noqa: BLE001 (explaining must not hide the failure itself)
            why = ""
        print(f"\nPipeline stopped. {why}", file=sys.stderr)
        print(f"Error: {type(error).__name__}: {first_line(error)}", file=sys.stderr)
        print(f"See the full log: {log_path}", file=sys.stderr)
        return 1
    finally:
        logging.getLogger().handlers = previous_handlers  # for callers in the same process
    print(f"\nPipeline finished in {time.monotonic() - started:.1f}s\n")
    run_id = lineage_store.run_ids(store, config.pipeline_name)[-1]
    checks.record(config, store, run_id, print_id, newest_before)
    print(report.run_report(store, run_id))
    if config.mlflow_tracking_uri:  # a view of MLMD: its failure is one line, not the run's
        from lineage.mlflow_log import log_after_run

        print(f"\n{log_after_run(config, store, run_id)}")
    if config.rollout != "replace":  # the pushed version enters as canary or shadow
        from monitoring.continuous import enter_after_push

        entered = enter_after_push(config, store, run_id)
        print(f"\n{entered}")
        return 1 if entered and entered.startswith("error:") else 0
    return 0


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:500]


class Interruption:
    """Ctrl-C (SIGINT) and SIGTERM stop the run, and are remembered.

    Beam turns a KeyboardInterrupt raised inside one of its steps into a RuntimeError, which
    TFX records as a failed component; the flag tells an interrupted run from a failed one.
    Signal handlers can only be set from the main thread: elsewhere signals keep their
    default handling.
    """

    def __init__(self) -> None:
        self.signalled = False

    @contextlib.contextmanager
    def catching(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def interrupt(signum, frame):
            self.signalled = True
            raise KeyboardInterrupt

        previous = {number: signal.signal(number, interrupt) for number in STOP_SIGNALS}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
