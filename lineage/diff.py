"""What differs between two runs: settings, hyperparameters, data drift, schema, metrics."""

from __future__ import annotations

import json

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from pipeline import names
from pipeline.metadata import artifacts, evaluations
from pipeline.metadata.store import (
    LineageError,
    execution_property,
    producer,
    run_executions,
    run_outputs,
)


def _run_outputs_by_node(store, run_id: str) -> dict[str, tuple]:
    try:
        records = run_executions(store, run_id)
    except KeyError as error:
        raise LineageError(error.args[0]) from None
    return {r.node_id: (r.execution, run_outputs(store, r.execution.id)) for r in records}


def diff(store: mlmd.MetadataStore, run_a: str, run_b: str) -> dict:
    """What differs between two runs: settings, hyperparameters, data drift, schema, metrics."""
    a, b = _run_outputs_by_node(store, run_a), _run_outputs_by_node(store, run_b)
    settings = {}
    for node in sorted(a.keys() & b.keys()):
        flat_a, flat_b = (_flat_properties(_settings_of(store, *x[node]), node) for x in (a, b))
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
    schema = [
        output(x, names.CURATED_SCHEMA_KEY) for x in (a, b)
    ]  # the one data is checked against
    if all(stats) and all(schema):
        result["same_data"] = stats[0].id == stats[1].id
        result["drift"] = artifacts.drift(stats[0].uri, stats[1].uri, schema[0].uri)
        result["schema_changes"] = artifacts.schema_changes(schema[0].uri, schema[1].uri)
    outputs = [output(x, "evaluation") for x in (a, b)]
    if all(outputs):
        metrics = [evaluations.slice_metrics(e.uri) for e in outputs]
        result["metrics"] = {
            name: {m: [metrics[0][name].get(m), metrics[1][name].get(m)] for m in metrics[0][name]}
            for name in sorted(
                metrics[0].keys() & metrics[1].keys(), key=lambda n: (n != names.OVERALL, n)
            )
        }
    return result


def _settings_of(store: mlmd.MetadataStore, execution, outputs: dict):
    """The execution whose settings made these outputs: for a cached one, the original.

    A cached execution records the properties before ExampleGen's driver resolves them (the
    span pattern unresolved, no input fingerprint or span), so comparing it would show
    differences that are not there.
    """
    if execution.last_known_state != metadata_store_pb2.Execution.CACHED:
        return execution
    artifacts = [item for items in outputs.values() for item in items]
    return producer(store, artifacts[0].id)[1] if artifacts else execution


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
