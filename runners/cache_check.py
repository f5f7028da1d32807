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
NOT_INPUTS = {"output_dir"}  # where the run writes, not what it reads


def record_path(config: pipeline_config.PipelineConfig) -> Path:
    return Path(config.output_dir) / f".{config.pipeline_name}.last-run.json"


def applies(config: pipeline_config.PipelineConfig) -> bool:
    """Runs whose result is more than the store's state are never skipped: a remote output
    (the orchestrator's), a rollout entry or an MLflow log after the push."""
    return (
        not pipeline_config.is_uri(config.output_dir)
        and config.rollout == "replace"
        and not config.mlflow_tracking_uri
    )


def fingerprint(config: pipeline_config.PipelineConfig) -> str:
    digest = hashlib.sha256(FORMAT.encode())
    settings = dataclasses.asdict(config)
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, value in sorted(settings.items()):
        if name not in NOT_INPUTS and isinstance(value, str) and value:
            digest.update(_files_digest(name, value))
    for package in CODE_PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            digest.update(str(path.relative_to(PROJECT)).encode() + path.read_bytes())
    for library in LIBRARIES:
        try:
            digest.update(f"{library}=={importlib.metadata.version(library)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{library} absent".encode())
    digest.update(platform.python_version().encode())
    return digest.hexdigest()


def _files_digest(name: str, location: str) -> bytes:
    """What a setting's file or folder holds, by name, size and modification time (TFX's own
    input fingerprint); nothing for a setting that names no local path."""
    path = Path(location)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    else:
        return b""
    lines = [name]
    for file in files:
        stat = file.stat()
        lines.append(f"{file}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return "\n".join(lines).encode()


def _newest_execution_id(store) -> int:
    from ml_metadata.metadata_store import metadata_store

    newest = store.get_executions(
        list_options=metadata_store.ListOptions(
            limit=1, order_by=metadata_store.OrderByField.ID, is_asc=False
        )
    )
    return newest[0].id if newest else 0


def record(config: pipeline_config.PipelineConfig, store, run_id: str, print_id: str) -> None:
    """After a successful run: what it was built from (never fails the run)."""
    if not applies(config):
        return
    try:
        found = {
            "format": FORMAT,
            "fingerprint": print_id,
            "run_id": run_id,
            "newest_execution_id": _newest_execution_id(store),
        }
        with atomic_write(record_path(config)) as out:
            json.dump(found, out, indent=1)
    except OSError:  # a read-only folder only costs the next run its shortcut
        pass


def unchanged_run(config: pipeline_config.PipelineConfig, store, print_id: str) -> str | None:
    """The run this one would repeat exactly, or None when TFX must look."""
    if not applies(config):
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
    if _newest_execution_id(store) != found.get("newest_execution_id"):
        return None
    for step in lineage_store.run_executions(store, found["run_id"]):
        for artifacts in lineage_store.run_outputs(store, step.execution.id).values():
            for artifact in artifacts:
                uri = artifact.uri
                if uri and not pipeline_config.is_uri(uri) and not os.path.exists(uri):
                    return None
    return found["run_id"]
