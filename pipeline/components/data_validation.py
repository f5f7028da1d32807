"""What the data-validation gate checks, as plain functions: the gate (gates.py) runs them in the
DAG, and the runners' failure report (lineage/report.py) runs them again to say why in words.
"""

from __future__ import annotations

import os

from pipeline.metadata.artifacts import DRIFT_SPLIT, load_schema, split_names, split_statistics

ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's output, one per split


class DataValidationError(RuntimeError):
    """Bad data reached the pipeline: nothing was trained."""


def anomaly_problems(anomalies_uri: str) -> list[str]:
    """ExampleValidator's findings, one line per split and feature."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.dsl.io import fileio

    problems = []
    for split in split_names(anomalies_uri):
        path = os.path.join(anomalies_uri, f"Split-{split}", ANOMALIES_FILE)
        with fileio.open(path, "rb") as handle:
            anomalies = anomalies_pb2.Anomalies.FromString(handle.read())
        for feature, info in sorted(anomalies.anomaly_info.items()):
            problems.append(f"{split} split, {feature}: {info.description}")
        if anomalies.HasField("dataset_anomaly_info"):
            problems.append(f"{split} split: {anomalies.dataset_anomaly_info.description}")
    return problems


def drift_problems(statistics_uri: str, previous_uri: str, schema_uri: str) -> list[str]:
    """Features whose distribution moved past their drift comparator's threshold."""
    import tensorflow_data_validation as tfdv

    anomalies = tfdv.validate_statistics(
        split_statistics(statistics_uri, DRIFT_SPLIT),
        load_schema(schema_uri),
        previous_statistics=split_statistics(previous_uri, DRIFT_SPLIT),
    )
    return [
        f"drift from the previous data, {feature}: {info.description}"
        for feature, info in sorted(anomalies.anomaly_info.items())
        if any(name.startswith("COMPARATOR_") for name in _reason_types(info))  # not schema
    ]


def _reason_types(info) -> list[str]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    return [anomalies_pb2.AnomalyInfo.Type.Name(reason.type) for reason in info.reason]


def data_problems(anomalies_uri, statistics_uri, schema_uri, previous_uri=None) -> list[str]:
    problems = anomaly_problems(anomalies_uri)
    if previous_uri and previous_uri != statistics_uri:
        problems += drift_problems(statistics_uri, previous_uri, schema_uri)
    return problems


def explain(problems: list[str]) -> str:
    lines = [f"Data validation failed ({len(problems)} problem(s)); nothing was trained:"]
    lines += [f"  - {p}" for p in problems]
    lines.append(
        "Fix the data, or if the change is expected, review and accept a new schema with: "
        "python -m lineage.schema_proposal propose --data-dir DIR --write"
    )
    return "\n".join(lines)
