"""Whether anything changed since the last run, checked before TensorFlow or TFX is imported.

A rerun with nothing changed costs TFX a graph build and a cache lookup per component, after
importing TensorFlow, Beam and every component library: most of its time (benchmarks/README.md).
After each successful run the runner records a fingerprint of what the run was built from: every
setting, the files and folders the settings name (data, schema) by size and modification time,
the pipeline's code by content, and the versions of the libraries that run it. The next run
reuses that run without starting TFX only when

- the fingerprint is the same,
- that run is still the pipeline's latest in the MLMD store, and no execution of any pipeline
  was recorded after it (nothing TFX's resolvers read has moved),
- every artifact it produced still exists on disk.

Remote data or schema, rollout entries and MLflow logs are never skipped (`applies`), and a run
that shared the store with another run records nothing, so the next one goes to TFX.

Otherwise TFX runs as always, and its own cache decides component by component.
`--skip-cache-check` always starts TFX.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
from pathlib import Path

from cli.atomic import atomic_write
from pipeline import config as pipeline_config
from pipeline.metadata import store as lineage_store

FORMAT = "cfpb-run-fingerprint/1"
PROJECT = Path(__file__).resolve().parent.parent
CODE_PACKAGES = ("cli", "data", "models", "pipeline")  # what the pipeline's components run
LIBRARIES = ("tfx", "tensorflow", "tensorflow-transform", "tensorflow-data-validation",
             "apache-beam", "ml-metadata", "keras-tuner", "tf-keras")  # fmt: skip
# The settings naming what a run reads (a test keeps this complete). The others that name files
# are where it writes (output_dir) or serve only --rollout canary|shadow, never skipped.
INPUT_PATHS = ("data_dir", "schema_file")


def record_path(config: pipeline_config.PipelineConfig) -> Path:
    return Path(config.output_dir) / f".{config.pipeline_name}.last-run.json"


def applies(config: pipeline_config.PipelineConfig) -> bool:
    """Runs never skipped: remote files (their listing is TFX's to read), and runs whose result
    is more than the store's state (a rollout entry, an MLflow log after the push)."""
    remote = [config.output_dir, *(getattr(config, name) for name in INPUT_PATHS)]
    return (
        not any(pipeline_config.is_uri(str(location)) for location in remote)
        and config.rollout == "replace"
        and not config.mlflow_tracking_uri
    )


def fingerprint(config: pipeline_config.PipelineConfig) -> str | None:
    """What the run is built from, as a digest; None when the check does not apply or a file
    could not be read (a folder changing under the scan, an editor's dangling lock link)."""
    if not applies(config):
        return None
    from pipeline import preflight

    digest = hashlib.sha256(FORMAT.encode())
    settings = dataclasses.asdict(config)
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    try:
        for name in INPUT_PATHS:
            digest.update(_files_digest(name, Path(settings[name])))
        # What the input pattern reaches, also outside the data folder, links followed.
        digest.update(_stats("input files", preflight.input_files(config)))
        for package in CODE_PACKAGES:
            for path in sorted((PROJECT / package).rglob("*.py")):
                if not path.name.startswith("."):
                    digest.update(str(path.relative_to(PROJECT)).encode() + path.read_bytes())
    except OSError:
        return None
    for library in LIBRARIES:
        try:
            digest.update(f"{library}=={importlib.metadata.version(library)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{library} absent".encode())
    digest.update(platform.python_version().encode())
    return digest.hexdigest()


def _files_digest(name: str, path: Path) -> bytes:
    """A file, or every file under a folder (symlinked folders followed, as TFX's glob does),
    by name, size and modification time: stricter than TFX's own input fingerprint."""
    if path.is_file():
        return _stats(name, [path])
    files = []
    for folder, _, names in os.walk(path, followlinks=True):
        files += [Path(folder, file) for file in names]
    return _stats(name, sorted(files))


def _stats(name: str, files: list[Path]) -> bytes:
    lines = [name]
    for file in files:
        stat = file.stat()
        lines.append(f"{file}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return "\n".join(lines).encode()


def newest_execution_id(store) -> int:
    from ml_metadata.metadata_store import metadata_store

    newest = store.get_executions(
        list_options=metadata_store.ListOptions(
            limit=1, order_by=metadata_store.OrderByField.ID, is_asc=False
        )
    )
    return newest[0].id if newest else 0


def record(
    config: pipeline_config.PipelineConfig,
    store,
    run_id: str,
    print_id: str | None,
    newest_before: int,
) -> None:
    """After a successful run: what it was built from (never fails the run). Nothing is recorded
    when another run shared the store meanwhile (a MySQL store two folders use): what it added
    may change this pipeline's next run, so that one goes to TFX."""
    if print_id is None:
        return
    try:
        newest = newest_execution_id(store)
        ours = {step.execution.id for step in lineage_store.run_executions(store, run_id)}
        since = store.get_executions_by_id(list(range(newest_before + 1, newest + 1)))
        if any(execution.id not in ours for execution in since):
            record_path(config).unlink(missing_ok=True)
            return
        found = {
            "format": FORMAT,
            "fingerprint": print_id,
            "run_id": run_id,
            "newest_execution_id": newest,
        }
        with atomic_write(record_path(config)) as out:
            json.dump(found, out, indent=1)
    except OSError:  # a read-only folder only costs the next run its shortcut
        pass


def unchanged_run(
    config: pipeline_config.PipelineConfig, store, print_id: str | None
) -> str | None:
    """The run this one would repeat exactly, or None when TFX must look."""
    if print_id is None:
        return None
    try:
        found = json.loads(record_path(config).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        return None
    if found.get("fingerprint") != print_id:
        return None
    run_ids = lineage_store.run_ids(store, config.pipeline_name)
    if not run_ids or run_ids[-1] != found.get("run_id"):
        return None
    if newest_execution_id(store) != found.get("newest_execution_id"):
        return None
    for step in lineage_store.run_executions(store, found["run_id"]):
        for artifacts in lineage_store.run_outputs(store, step.execution.id).values():
            for artifact in artifacts:
                uri = artifact.uri
                if uri and not pipeline_config.is_uri(uri) and not os.path.exists(uri):
                    return None
    return found["run_id"]
