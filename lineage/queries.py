"""Answers for the lineage command, the runners' summary and the notebook: runs, trace, uses,
and the whole graph. Built on the store primitives in pipeline.metadata.store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from pipeline import names
from pipeline.metadata import artifacts, decisions, evaluations
from pipeline.metadata.store import (
    INPUT_EVENTS,
    OUTPUT_EVENTS,
    ExecutionRecord,
    LineageError,
    artifact,
    artifact_type,
    consumers,
    custom_property,
    execution_property,
    execution_run_id,
    latest_pushed_model,
    model_pushes,
    node_id,
    producer,
    pushed_destination,
    pushes,
    run_executions,
    run_ids,
    run_inputs,
    run_outputs,
)

# A run's status: the first of these states among its executions, else COMPLETE.
RUN_STATUS = (
    ("FAILED", "FAILED"),
    ("CANCELED", "INTERRUPTED"),
    ("RUNNING", "RUNNING"),
    ("NEW", "RUNNING"),
)


@dataclass(frozen=True)
class RunSummary:
    """One run: when, how it ended, each component's execution, the blessing and the push."""

    run_id: str
    started_ms: int
    status: str
    executions: list[ExecutionRecord]
    blessed: bool | None
    pushed_to: str | None  # pushed by this run
    reused_push: str | None = None  # a cached Pusher: the earlier push still in place

    @property
    def executed(self) -> list[str]:
        return [r.node_id for r in self.executions if r.state == "COMPLETE"]

    @property
    def cached(self) -> list[str]:
        return [r.node_id for r in self.executions if r.cached]

    def as_json(self) -> dict:
        return {
            "run_id": self.run_id,
            "started_ms": self.started_ms,
            "status": self.status,
            "executed": self.executed,
            "cached": self.cached,
            "pushed_to": self.pushed_to,
        }


def run_summary(store: mlmd.MetadataStore, run_id: str) -> RunSummary:
    """When a run started, how it ended, what executed or came from cache, blessing, push."""
    records = run_executions(store, run_id)
    states = {record.state for record in records}
    blessed = None
    for record in records:
        for blessing in run_outputs(store, record.execution.id).get("blessing", []):
            blessed = custom_property(blessing, "blessed") == 1
    pushed = [
        pushed_destination(p)
        for p in pushes(store, [r.execution.id for r in records if not r.cached])
    ]
    reused = [
        pushed_destination(p) for p in pushes(store, [r.execution.id for r in records if r.cached])
    ]
    return RunSummary(
        run_id=run_id,
        started_ms=min((r.execution.create_time_since_epoch for r in records), default=0),
        status=next((name for state, name in RUN_STATUS if state in states), "COMPLETE"),
        executions=records,
        blessed=blessed,
        pushed_to=pushed[-1] if pushed else None,
        reused_push=reused[-1] if reused else None,
    )


def run_summaries(store: mlmd.MetadataStore, pipeline_name: str) -> list[RunSummary]:
    """Each run of a pipeline, oldest first."""
    return [run_summary(store, run_id) for run_id in run_ids(store, pipeline_name)]


def _blessing_of(store, model_id: int) -> metadata_store_pb2.Artifact | None:
    blessings = [
        b
        for b in store.get_artifacts_by_type("ModelBlessing")
        if custom_property(b, "current_model_id") == model_id
    ]
    return max(blessings, key=lambda b: b.id, default=None)


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
    if not (reference.isascii() and reference.isdigit()):
        raise LineageError(f"{reference!r} is neither 'latest-pushed' nor an artifact id")
    item = artifact(store, int(reference))
    kind = artifact_type(store, item)
    if kind == "PushedModel":
        _, pusher = producer(store, item.id)
        return run_inputs(store, pusher.id)["model"][0]
    if kind != "Model":
        raise LineageError(f"artifact {item.id} is a {kind}, not a Model or PushedModel")
    return item


def _hyperparameters_source(store: mlmd.MetadataStore, hyperparameters: list) -> dict | None:
    """Which Tuner run chose the hyperparameters a model was trained with (None: defaults)."""
    if not hyperparameters:
        return None
    _, tuner = producer(store, hyperparameters[0].id)
    return {"artifact_id": hyperparameters[0].id, "tuned_in_run": execution_run_id(store, tuner.id)}


def trace(store: mlmd.MetadataStore, reference: str) -> dict:
    """The whole upstream chain of a model, down to the input files' content fingerprint."""
    model = resolve_model(store, reference)
    _, trainer = producer(store, model.id)
    trainer_inputs = run_inputs(store, trainer.id)
    transformed = trainer_inputs["examples"][0]
    _, transform = producer(store, transformed.id)
    transform_inputs = run_inputs(store, transform.id)
    examples = transform_inputs["examples"][0]
    _, example_gen = producer(store, examples.id)
    statistics = _output_of(store, [examples.id], names.STATISTICS_GEN, "statistics")
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
            "validation_splits": _json_property(trainer, "eval_args").get("splits", []),
            **_json_property(trainer, "custom_config"),
            "hyperparameters": artifacts.hyperparameters(hyperparameters[0].uri)
            if hyperparameters
            else {},
            "hyperparameters_uri": hyperparameters[0].uri if hyperparameters else None,
            "hyperparameters_source": _hyperparameters_source(store, hyperparameters),
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
            "feedback": json.loads(custom_property(examples, "feedback_manifest") or "[]"),
        },
        "evaluation": None
        if blessing is None
        else {
            "blessed": custom_property(blessing, "blessed") == 1,
            "baseline_model_id": baseline[0].id if baseline else None,
            "metrics": evaluations.slice_estimates(evaluation.uri).get(names.OVERALL, {}),
            "reasons": getattr(evaluations.load_evaluation(evaluation.uri), "reasons", []),
            "uri": evaluation.uri,
            "decision_threshold": custom_property(model, "decision_threshold"),
            "fairness": _fairness_json(evaluation.uri),
        },
        "pushed": [
            {
                "id": p.id,
                "destination": pushed_destination(p),
                "rollout_decisions": decisions.rollout_decisions(store, p.id),
            }
            for p in model_pushes(store, model.id)
        ],
        "schema_difference": _schema_difference(store, execution_run_id(store, trainer.id)),
    }


def examples_from(store: mlmd.MetadataStore, reference: str) -> list[metadata_store_pb2.Artifact]:
    """Examples artifacts from an artifact id, or from the data folder or file ExampleGen read."""
    if reference.isascii() and reference.isdigit():
        item = artifact(store, int(reference))
        if artifact_type(store, item) != "Examples":
            raise LineageError(
                f"artifact {item.id} is a {artifact_type(store, item)}, not Examples"
            )
        return [item]

    def local(path: str) -> str:  # symlinks resolved, so any spelling of a path matches
        return path if "://" in path else os.path.realpath(path)

    location = local(reference).rstrip("/")
    found = []
    for item in store.get_artifacts_by_type("Examples"):
        try:
            _, execution = producer(store, item.id)
        except LineageError:  # e.g. imported, not produced
            continue
        files = [local(f["path"]) for f in json.loads(custom_property(item, "input_files") or "[]")]
        base = execution_property(execution, "input_base")
        base = local(base).rstrip("/") if base else None
        if location == base or location in files:
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
                "pushed_to": [pushed_destination(p) for p in model_pushes(store, model.id)],
            }
        )
    return result


def graph(store: mlmd.MetadataStore) -> dict:
    """Every execution, artifact and event in the store (the export format: docs/lineage.md)."""
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


def _fairness_json(evaluation_uri: str) -> dict | None:
    from pipeline.components import fairness

    report = fairness.load_report(evaluation_uri)
    return None if report is None else json.loads(report.to_json())


def _schema_difference(store: mlmd.MetadataStore, run_id: str | None) -> list[str] | None:
    """The training run's inferred-vs-curated schema difference (lineage/schema_diff.py)."""
    from lineage import schema_diff

    changes = schema_diff.run_difference(store, run_id) if run_id else None
    return None if changes is None else [str(change) for change in changes]
