"""After a run killed mid-way: its unfinished executions marked CANCELED, so the next run
resumes from the cache and the lineage command shows the run as INTERRUPTED.
"""

from __future__ import annotations

import os

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from pipeline.metadata.store import PIPELINE_CONTEXT, RUN_CONTEXT, node_id

UNFINISHED_STATES = ("NEW", "RUNNING")


def cancel_interrupted(
    store: mlmd.MetadataStore, pipeline_name: str, pipeline_root: str
) -> list[int]:
    """Mark executions that a stopped run of this output folder left NEW or RUNNING as
    CANCELED; returns their ids.

    Only this folder's: runs of the same pipeline from other output folders (a local and an
    Airflow run on one MySQL store) may be live, and only this folder's lock, held by the
    caller, proves that no run of its own is.
    """
    pipeline = store.get_context_by_type_and_name(PIPELINE_CONTEXT, pipeline_name)
    if pipeline is None:
        return []
    unfinished = [
        execution
        for execution in store.get_executions_by_context(pipeline.id)
        if metadata_store_pb2.Execution.State.Name(execution.last_known_state) in UNFINISHED_STATES
        and started_under(store, execution, pipeline_root)
    ]
    return _mark_canceled(store, unfinished)


def cancel_run(store: mlmd.MetadataStore, run_id: str) -> list[int]:
    """Mark a stopped run's unfinished or failed executions CANCELED; returns their ids."""
    run = store.get_context_by_type_and_name(RUN_CONTEXT, run_id)
    stopped = [
        execution
        for execution in (store.get_executions_by_context(run.id) if run else [])
        if metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        in (*UNFINISHED_STATES, "FAILED")
    ]
    return _mark_canceled(store, stopped)


def _mark_canceled(
    store: mlmd.MetadataStore, executions: list[metadata_store_pb2.Execution]
) -> list[int]:
    for execution in executions:
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
    if executions:
        store.put_executions(executions)
    return [execution.id for execution in executions]


def started_under(
    store: mlmd.MetadataStore, execution: metadata_store_pb2.Execution, pipeline_root: str
) -> bool:
    """Whether a runner with this pipeline root started the execution, or its run.

    TFX's launcher makes <pipeline root>/<node>/.system/executor_execution/<execution id>/
    right after it registers an execution; MLMD records no pipeline root of its own.
    """

    if "://" in pipeline_root:  # gs://, s3://: TFX's file system layer
        from tfx.dsl.io.fileio import isdir
    else:
        isdir = os.path.isdir

    def has_folder(item: metadata_store_pb2.Execution) -> bool:
        folder = os.path.join(
            pipeline_root, node_id(store, item.id), ".system", "executor_execution", str(item.id)
        )
        return isdir(folder)

    if has_folder(execution):
        return True
    # Stopped before its folder was made: the other executions of its run tell where it ran.
    runs = [c for c in store.get_contexts_by_execution(execution.id) if c.type == RUN_CONTEXT]
    return any(has_folder(item) for run in runs for item in store.get_executions_by_context(run.id))
