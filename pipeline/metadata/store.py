"""MLMD store primitives: connect, runs and their executions, who wrote or read an artifact.

Used inside the pipeline (the look-back resolvers) and by the lineage command's queries.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from pipeline.names import PUSHER

PIPELINE_CONTEXT = "pipeline"
RUN_CONTEXT = "pipeline_run"
NODE_CONTEXT = "node"
# InteractiveContext (the notebook) records '<pipeline>.<run>.<node id>' contexts instead.
INTERACTIVE_NODE_CONTEXT = "component_run"
INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


@dataclass(frozen=True)
class ExecutionRecord:
    """One component's execution in a run, as MLMD recorded it."""

    node_id: str
    state: str
    seconds: float
    execution: metadata_store_pb2.Execution

    @property
    def cached(self) -> bool:
        return self.state == "CACHED"


def connect(
    connection_config: metadata_store_pb2.ConnectionConfig, attempts: int = 10
) -> mlmd.MetadataStore:
    """Open the store, retrying while another process creates its tables.

    Two runs starting at once against an empty MySQL database race to create MLMD's
    schema; the loser gets a RuntimeError that is safe to retry (TFX retries it too).
    """
    for _ in range(attempts - 1):
        try:
            return mlmd.MetadataStore(connection_config)
        except RuntimeError:
            time.sleep(random.uniform(0.2, 1.0))
    return mlmd.MetadataStore(connection_config)


def _context(store: mlmd.MetadataStore, type_name: str, name: str):
    return store.get_context_by_type_and_name(type_name, name)


def node_id(store: mlmd.MetadataStore, execution_id: int) -> str:
    """The pipeline node (component id) that ran an execution."""
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == NODE_CONTEXT:
            return context.name.split(".", 1)[-1]
        if context.type == INTERACTIVE_NODE_CONTEXT:
            return context.name.rsplit(".", 1)[-1]
    return "?"


def execution_property(execution: metadata_store_pb2.Execution, name: str) -> str | None:
    """A string execution property, wherever the launcher kept it.

    Pipeline runners record component properties as custom properties; the notebook's
    InteractiveContext records them as properties.
    """
    for properties in (execution.custom_properties, execution.properties):
        if name in properties:
            return properties[name].string_value
    return None


def run_ids(store: mlmd.MetadataStore, pipeline_name: str) -> list[str]:
    """The pipeline's run ids, oldest first."""
    pipeline = _context(store, PIPELINE_CONTEXT, pipeline_name)
    if pipeline is None:
        return []
    runs: dict[str, int] = {}
    for execution in store.get_executions_by_context(pipeline.id):
        for context in store.get_contexts_by_execution(execution.id):
            if context.type == RUN_CONTEXT:
                runs[context.name] = context.create_time_since_epoch
    return sorted(runs, key=runs.get)


def run_executions(store: mlmd.MetadataStore, run_id: str) -> list[ExecutionRecord]:
    """The executions of one run, in the order they started."""
    run = _context(store, RUN_CONTEXT, run_id)
    if run is None:
        raise KeyError(f"no pipeline run {run_id!r} in this MLMD store")
    executions = sorted(
        store.get_executions_by_context(run.id), key=lambda e: e.create_time_since_epoch
    )
    return [
        ExecutionRecord(
            node_id=node_id(store, execution.id),
            state=metadata_store_pb2.Execution.State.Name(execution.last_known_state),
            seconds=(execution.last_update_time_since_epoch - execution.create_time_since_epoch)
            / 1000,
            execution=execution,
        )
        for execution in executions
    ]


def run_outputs(
    store: mlmd.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's output artifacts by output key."""
    return _artifacts_by_key(store, execution_id, OUTPUT_EVENTS)


def run_inputs(
    store: mlmd.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's input artifacts by input key."""
    return _artifacts_by_key(store, execution_id, INPUT_EVENTS)


def _artifacts_by_key(store, execution_id, event_types) -> dict[str, list]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in event_types]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    result: dict[str, list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        result.setdefault(key, []).append(artifacts[event.artifact_id])
    return result


@dataclass(frozen=True)
class LineageStep:
    """An execution on the path to an artifact, with what it read."""

    node_id: str
    execution: metadata_store_pb2.Execution
    inputs: dict[str, list[metadata_store_pb2.Artifact]]


def upstream(store: mlmd.MetadataStore, artifact_id: int) -> Iterator[LineageStep]:
    """Every execution an artifact depends on, nearest first (breadth-first)."""
    seen: set[int] = set()
    frontier = [artifact_id]
    while frontier:
        events = store.get_events_by_artifact_ids(frontier)
        producers = sorted({e.execution_id for e in events if e.type in OUTPUT_EVENTS} - seen)
        frontier = []
        for execution in store.get_executions_by_id(producers):
            seen.add(execution.id)
            inputs = run_inputs(store, execution.id)
            yield LineageStep(node_id(store, execution.id), execution, inputs)
            frontier += [a.id for artifacts in inputs.values() for a in artifacts]


class LineageError(LookupError):
    """A question the store cannot answer (unknown id, empty store), in plain words."""


def pipeline_names(store: mlmd.MetadataStore) -> list[str]:
    return sorted(context.name for context in store.get_contexts_by_type(PIPELINE_CONTEXT))


def producer(
    store: mlmd.MetadataStore, artifact_id: int
) -> tuple[str, metadata_store_pb2.Execution]:
    """The node and execution that first wrote an artifact (later ones reused it from cache)."""
    events = [e for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in OUTPUT_EVENTS]
    if not events:
        raise LineageError(f"artifact {artifact_id} has no producer in this store")
    execution = store.get_executions_by_id([min(e.execution_id for e in events)])[0]
    return node_id(store, execution.id), execution


def consumers(
    store: mlmd.MetadataStore, artifact_ids: list[int]
) -> list[metadata_store_pb2.Execution]:
    """Executions that read any of these artifacts, oldest first."""
    ids = sorted(
        {
            e.execution_id
            for e in store.get_events_by_artifact_ids(artifact_ids)
            if e.type in INPUT_EVENTS
        }
    )
    return store.get_executions_by_id(ids)


def execution_run_id(store: mlmd.MetadataStore, execution_id: int) -> str | None:
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == RUN_CONTEXT:
            return context.name
    return None


def artifact(store: mlmd.MetadataStore, artifact_id: int) -> metadata_store_pb2.Artifact:
    # MLMD ids are int64; a larger number would fail inside MLMD's bindings, not here.
    found = store.get_artifacts_by_id([artifact_id]) if 0 < artifact_id < 2**63 else []
    if not found:
        raise LineageError(f"no artifact with id {artifact_id} in this store")
    return found[0]


def artifact_type(store: mlmd.MetadataStore, item: metadata_store_pb2.Artifact) -> str:
    return item.type or store.get_artifact_types_by_id([item.type_id])[0].name


def custom_property(item, name: str):
    """A custom property's value (string, int or float), or None when absent."""
    if name not in item.custom_properties:
        return None
    value = item.custom_properties[name]
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


# --- Was it pushed, and where: the one answer for the runner, the command and the notebook ---


def pushed_destination(pushed: metadata_store_pb2.Artifact) -> str | None:
    """Where a PushedModel artifact's model went; None when the Pusher did not push it."""
    if custom_property(pushed, "pushed") != 1:
        return None
    return custom_property(pushed, "pushed_destination")


def pushes(
    store: mlmd.MetadataStore, execution_ids: list[int]
) -> list[metadata_store_pb2.Artifact]:
    """The PushedModel outputs of these executions that were really pushed, oldest first."""
    found: dict[int, metadata_store_pb2.Artifact] = {}
    for execution_id in execution_ids:
        for pushed in run_outputs(store, execution_id).get("pushed_model", []):
            if pushed_destination(pushed) is not None:
                found.setdefault(pushed.id, pushed)
    return list(found.values())


def model_pushes(store: mlmd.MetadataStore, model_id: int) -> list[metadata_store_pb2.Artifact]:
    """Every push of a Model artifact."""
    pushers = [e.id for e in consumers(store, [model_id]) if node_id(store, e.id) == PUSHER]
    return pushes(store, pushers)


def latest_pushed_model(store: mlmd.MetadataStore) -> metadata_store_pb2.Artifact | None:
    """The newest PushedModel artifact that was really pushed."""
    pushed = [
        artifact
        for artifact in store.get_artifacts_by_type("PushedModel")
        if pushed_destination(artifact) is not None
    ]
    return max(pushed, key=lambda a: a.create_time_since_epoch, default=None)


def newest_ingested_span(store: mlmd.MetadataStore, pipeline_name: str) -> int | None:
    """The newest span this pipeline's ExampleGen has turned into examples; None if none yet.

    A span the data gate then refused counts too: retraining waits for a newer span rather
    than retrying the same refused data on every schedule.
    """
    pipeline = _context(store, PIPELINE_CONTEXT, pipeline_name)
    if pipeline is None:
        return None
    spans = [
        _span(item)
        for item in store.get_artifacts_by_context(pipeline.id)
        if item.state == metadata_store_pb2.Artifact.LIVE
        and artifact_type(store, item) == "Examples"
    ]
    return max((span for span in spans if span is not None), default=None)


def _span(item: metadata_store_pb2.Artifact) -> int | None:
    """An Examples artifact's span: TFX 1.16 records it as a custom property."""
    for properties in (item.custom_properties, item.properties):
        if "span" in properties:
            return properties["span"].int_value
    return None


def resolve_run(store: mlmd.MetadataStore, pipeline_name: str, reference: str) -> str:
    """A run id from a reference: the id itself, or #N, the Nth run of the pipeline."""
    known = run_ids(store, pipeline_name)
    if not known:
        raise LineageError(f"pipeline {pipeline_name} has no runs in this store yet")
    if reference.startswith("#"):
        number = reference[1:]
        if not number.isdigit() or not 1 <= int(number) <= len(known):
            raise LineageError(
                f"{reference}: pipeline {pipeline_name} has runs #1 to #{len(known)}"
            )
        return known[int(number) - 1]
    if reference not in known:
        raise LineageError(f"no run {reference!r} of pipeline {pipeline_name} (see 'runs')")
    return reference
