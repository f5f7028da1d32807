"""Queries over the MLMD store: runs, their executions, and where an artifact came from."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

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


def latest_pushed_model(store: mlmd.MetadataStore) -> metadata_store_pb2.Artifact | None:
    """The newest PushedModel artifact that was really pushed."""
    pushed = [
        artifact
        for artifact in store.get_artifacts_by_type("PushedModel")
        if artifact.custom_properties["pushed"].int_value == 1
    ]
    return max(pushed, key=lambda a: a.create_time_since_epoch, default=None)


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


# --- Answers for the lineage command (python -m pipeline.lineage_cli) -----------------------

UNFINISHED_STATES = ("NEW", "RUNNING")
# A run's status: the first of these states among its executions, else COMPLETE.
RUN_STATUS = (
    ("FAILED", "FAILED"),
    ("CANCELED", "INTERRUPTED"),
    ("RUNNING", "RUNNING"),
    ("NEW", "RUNNING"),
)


class LineageError(LookupError):
    """A question the store cannot answer (unknown id, empty store), in plain words."""


def cancel_interrupted(store: mlmd.MetadataStore, pipeline_name: str) -> list[int]:
    """Mark executions a killed run left NEW or RUNNING as CANCELED; returns their ids.

    Only safe while no other run of the pipeline is going on (the runners hold a lock).
    """
    pipeline = _context(store, PIPELINE_CONTEXT, pipeline_name)
    if pipeline is None:
        return []
    unfinished = [
        execution
        for execution in store.get_executions_by_context(pipeline.id)
        if metadata_store_pb2.Execution.State.Name(execution.last_known_state) in UNFINISHED_STATES
    ]
    for execution in unfinished:
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
    if unfinished:
        store.put_executions(unfinished)
    return [execution.id for execution in unfinished]


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
    found = store.get_artifacts_by_id([artifact_id])
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


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    started_ms: int
    status: str
    executed: list[str]
    cached: list[str]
    pushed_to: str | None


def run_summaries(store: mlmd.MetadataStore, pipeline_name: str) -> list[RunSummary]:
    """Each run of a pipeline: when, how it ended, what executed or came from cache, the push."""
    summaries = []
    for run_id in run_ids(store, pipeline_name):
        records = run_executions(store, run_id)
        states = {record.state for record in records}
        status = next((name for state, name in RUN_STATUS if state in states), "COMPLETE")
        pushed_to = None
        for record in records:
            for pushed in run_outputs(store, record.execution.id).get("pushed_model", []):
                if custom_property(pushed, "pushed") == 1 and not record.cached:
                    pushed_to = custom_property(pushed, "pushed_destination")
        summaries.append(
            RunSummary(
                run_id=run_id,
                started_ms=min((r.execution.create_time_since_epoch for r in records), default=0),
                status=status,
                executed=[r.node_id for r in records if r.state == "COMPLETE"],
                cached=[r.node_id for r in records if r.cached],
                pushed_to=pushed_to,
            )
        )
    return summaries


def _blessing_of(store, model_id: int) -> metadata_store_pb2.Artifact | None:
    blessings = [
        b
        for b in store.get_artifacts_by_type("ModelBlessing")
        if custom_property(b, "current_model_id") == model_id
    ]
    return max(blessings, key=lambda b: b.id, default=None)


def _pushes_of(store, model_id: int) -> list[metadata_store_pb2.Artifact]:
    pushes = []
    for execution in consumers(store, [model_id]):
        if node_id(store, execution.id) == "Pusher":
            for pushed in run_outputs(store, execution.id).get("pushed_model", []):
                if custom_property(pushed, "pushed") == 1 and pushed.id not in {
                    p.id for p in pushes
                }:
                    pushes.append(pushed)
    return pushes


def _output_of(store, artifact_ids: list[int], node: str, key: str):
    """The `key` output of the first `node` execution that read one of these artifacts."""
    for execution in consumers(store, artifact_ids):
        if node_id(store, execution.id) == node:
            found = run_outputs(store, execution.id).get(key)
            if found:
                return found[0]
    return None


def _json_property(execution, name: str) -> dict:
    text = execution_property(execution, name)
    return json.loads(text) if text else {}


def resolve_model(store: mlmd.MetadataStore, reference: str) -> metadata_store_pb2.Artifact:
    """A Model artifact from 'latest-pushed', a Model id, or a PushedModel id."""
    if reference == "latest-pushed":
        pushed = latest_pushed_model(store)
        if pushed is None:
            raise LineageError("no model has been pushed in this store yet")
        reference = str(pushed.id)
    if not reference.isdigit():
        raise LineageError(f"{reference!r} is neither 'latest-pushed' nor an artifact id")
    item = artifact(store, int(reference))
    kind = artifact_type(store, item)
    if kind == "PushedModel":
        _, pusher = producer(store, item.id)
        return run_inputs(store, pusher.id)["model"][0]
    if kind != "Model":
        raise LineageError(f"artifact {item.id} is a {kind}, not a Model or PushedModel")
    return item


def trace(store: mlmd.MetadataStore, reference: str) -> dict:
    """The whole upstream chain of a model, down to the input files' content fingerprint."""
    from pipeline import artifacts

    model = resolve_model(store, reference)
    _, trainer = producer(store, model.id)
    trainer_inputs = run_inputs(store, trainer.id)
    transformed = trainer_inputs["examples"][0]
    _, transform = producer(store, transformed.id)
    transform_inputs = run_inputs(store, transform.id)
    examples = transform_inputs["examples"][0]
    _, example_gen = producer(store, examples.id)
    statistics = _output_of(store, [examples.id], "StatisticsGen", "statistics")
    blessing = _blessing_of(store, model.id)
    evaluation = None
    if blessing is not None:
        _, evaluator = producer(store, blessing.id)
        evaluation = run_outputs(store, evaluator.id)["evaluation"][0]
        baseline = run_inputs(store, evaluator.id).get("baseline_model", [])
    hyperparameters = trainer_inputs.get("hyperparameters", [])
    return {
        "model": {
            "id": model.id,
            "uri": model.uri,
            "trained_in_run": execution_run_id(store, trainer.id),
            "git_revision": custom_property(model, "git_revision"),
            "package_versions": json.loads(custom_property(model, "package_versions") or "{}"),
        },
        "training": {
            "train_steps": _json_property(trainer, "train_args").get("num_steps"),
            "eval_steps": _json_property(trainer, "eval_args").get("num_steps"),
            **_json_property(trainer, "custom_config"),
            "hyperparameters": artifacts.hyperparameters(hyperparameters[0].uri)
            if hyperparameters
            else {},
            "hyperparameters_uri": hyperparameters[0].uri if hyperparameters else None,
        },
        "transform_graph": trainer_inputs["transform_graph"][0].uri,
        "schema": transform_inputs["schema"][0].uri,
        "examples": {
            "id": examples.id,
            "uri": examples.uri,
            "split_counts": artifacts.split_counts(statistics.uri) if statistics else {},
            "input_base": execution_property(example_gen, "input_base"),
            "input_sha256": custom_property(examples, "input_sha256"),
            "input_files": json.loads(custom_property(examples, "input_files") or "[]"),
        },
        "evaluation": None
        if blessing is None
        else {
            "blessed": custom_property(blessing, "blessed") == 1,
            "baseline_model_id": baseline[0].id if baseline else None,
            "metrics": artifacts.overall_metrics(evaluation.uri),
            "uri": evaluation.uri,
        },
        "pushed": [
            {"id": p.id, "destination": custom_property(p, "pushed_destination")}
            for p in _pushes_of(store, model.id)
        ],
    }


def examples_from(store: mlmd.MetadataStore, reference: str) -> list[metadata_store_pb2.Artifact]:
    """Examples artifacts from an artifact id, or from the data folder or file ExampleGen read."""
    if reference.isdigit():
        item = artifact(store, int(reference))
        if artifact_type(store, item) != "Examples":
            raise LineageError(
                f"artifact {item.id} is a {artifact_type(store, item)}, not Examples"
            )
        return [item]
    location = reference if "://" in reference else os.path.abspath(reference)
    found = []
    for item in store.get_artifacts_by_type("Examples"):
        try:
            _, execution = producer(store, item.id)
        except LineageError:  # e.g. imported, not produced
            continue
        files = [f["path"] for f in json.loads(custom_property(item, "input_files") or "[]")]
        base = (execution_property(execution, "input_base") or "").rstrip("/")
        if location.rstrip("/") == base or location in files:
            found.append(item)
    if not found:
        raise LineageError(f"no ExampleGen in this store read {reference}")
    return found


def uses(store: mlmd.MetadataStore, reference: str) -> list[dict]:
    """Every model trained from some data, with its blessing and where it was pushed."""
    frontier = [e.id for e in examples_from(store, reference)]
    seen, models = set(frontier), {}
    while frontier:
        executions = consumers(store, frontier)
        frontier = []
        for execution in executions:
            for outputs in run_outputs(store, execution.id).values():
                for item in outputs:
                    if item.id in seen:
                        continue
                    seen.add(item.id)
                    frontier.append(item.id)
                    if artifact_type(store, item) == "Model":
                        models[item.id] = item
    result = []
    for model in sorted(models.values(), key=lambda m: m.id):
        _, trainer = producer(store, model.id)
        blessing = _blessing_of(store, model.id)
        result.append(
            {
                "model_id": model.id,
                "uri": model.uri,
                "trained_in_run": execution_run_id(store, trainer.id),
                "blessed": None if blessing is None else custom_property(blessing, "blessed") == 1,
                "pushed_to": [
                    custom_property(p, "pushed_destination") for p in _pushes_of(store, model.id)
                ],
            }
        )
    return result


def _run_outputs_by_node(store, run_id: str) -> dict[str, tuple]:
    try:
        records = run_executions(store, run_id)
    except KeyError as error:
        raise LineageError(error.args[0]) from None
    return {r.node_id: (r.execution, run_outputs(store, r.execution.id)) for r in records}


def diff(store: mlmd.MetadataStore, run_a: str, run_b: str) -> dict:
    """What differs between two runs: settings, hyperparameters, data drift, schema, metrics."""
    from pipeline import artifacts

    a, b = _run_outputs_by_node(store, run_a), _run_outputs_by_node(store, run_b)
    settings = {}
    for node in sorted(a.keys() & b.keys()):
        flat_a, flat_b = (_flat_properties(x[node][0], node) for x in (a, b))
        for key in sorted(flat_a.keys() | flat_b.keys()):
            if flat_a.get(key) != flat_b.get(key):
                settings[key] = [flat_a.get(key), flat_b.get(key)]

    def output(runs, key):
        """The run's output artifact under this key, whichever component wrote it."""
        found = [outputs[key][0] for _, outputs in runs.values() if outputs.get(key)]
        return found[0] if found else None

    result: dict = {"runs": [run_a, run_b], "settings": settings}
    hp = [output(x, "best_hyperparameters") for x in (a, b)]
    if all(hp):
        values = [artifacts.hyperparameters(h.uri) for h in hp]
        result["hyperparameters"] = {
            k: [values[0].get(k), values[1].get(k)]
            for k in sorted(values[0].keys() | values[1].keys())
            if values[0].get(k) != values[1].get(k)
        }
    stats = [output(x, "statistics") for x in (a, b)]
    schema = [output(x, "schema") for x in (a, b)]
    if all(stats) and all(schema):
        result["same_data"] = stats[0].id == stats[1].id
        result["drift"] = artifacts.drift(stats[0].uri, stats[1].uri, schema[0].uri)
        result["schema_changes"] = artifacts.schema_changes(schema[0].uri, schema[1].uri)
    evaluations = [output(x, "evaluation") for x in (a, b)]
    if all(evaluations):
        metrics = [artifacts.slice_metrics(e.uri) for e in evaluations]
        result["metrics"] = {
            name: {m: [metrics[0][name].get(m), metrics[1][name].get(m)] for m in metrics[0][name]}
            for name in sorted(
                metrics[0].keys() & metrics[1].keys(), key=lambda n: (n != artifacts.OVERALL, n)
            )
        }
    return result


def _flat_properties(execution, prefix: str) -> dict[str, object]:
    """An execution's properties, JSON ones flattened to dotted leaves (a.b[0].c: value)."""
    flat: dict[str, object] = {}

    def walk(value, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        else:
            flat[path] = value

    for name in set(execution.custom_properties) | set(execution.properties):
        text = execution_property(execution, name)
        try:
            walk(json.loads(text), f"{prefix}.{name}")
        except (TypeError, ValueError):
            flat[f"{prefix}.{name}"] = text
    return flat


def graph(store: mlmd.MetadataStore) -> dict:
    """Every execution, artifact and event in the store (the export format, see README)."""
    executions = store.get_executions()
    return {
        "format": "cfpb-lineage/1",
        "executions": [
            {
                "id": e.id,
                "node_id": node_id(store, e.id),
                "run_id": execution_run_id(store, e.id),
                "state": metadata_store_pb2.Execution.State.Name(e.last_known_state),
                "started_ms": e.create_time_since_epoch,
            }
            for e in executions
        ],
        "artifacts": [
            {
                "id": a.id,
                "type": artifact_type(store, a),
                "uri": a.uri,
                "created_ms": a.create_time_since_epoch,
            }
            for a in store.get_artifacts()
        ],
        "events": [
            {
                "execution_id": e.execution_id,
                "artifact_id": e.artifact_id,
                "direction": "input" if e.type in INPUT_EVENTS else "output",
                "key": e.path.steps[0].key if e.path.steps else "",
            }
            for e in store.get_events_by_execution_ids([x.id for x in executions])
            if e.type in INPUT_EVENTS + OUTPUT_EVENTS
        ],
    }
