"""What artifacts hold: statistics, schemas, hyperparameters (the Evaluator's: evaluations.py)."""

from __future__ import annotations

import json
import os

from pipeline.metadata import files

DRIFT_SPLIT = "train"


def split_names(uri: str) -> list[str]:
    """The splits of an artifact with one 'Split-<name>' folder per split (local, gs://, s3://)."""
    names = (name.rstrip("/") for name in files.listdir(uri))
    return sorted(n.removeprefix("Split-") for n in names if n.startswith("Split-"))


def split_statistics(statistics_uri: str, split: str):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    path = os.path.join(statistics_uri, f"Split-{split}", "FeatureStats.pb")
    return statistics_pb2.DatasetFeatureStatisticsList.FromString(files.read(path, "rb"))


def split_counts(statistics_uri: str) -> dict[str, int]:
    """Examples per split, from a StatisticsGen output."""
    return {
        split: split_statistics(statistics_uri, split).datasets[0].num_examples
        for split in split_names(statistics_uri)
    }


def load_schema_file(path: str):
    """A schema in TFDV's text format: the curated file, or one inside a Schema artifact."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(files.read(path), schema_pb2.Schema())


def load_schema(schema_uri: str):
    """The schema of a Schema artifact (SchemaGen's or ImportSchemaGen's output folder)."""
    return load_schema_file(os.path.join(schema_uri, "schema.pbtxt"))


def schema_changes(schema_uri_a: str, schema_uri_b: str) -> list[str]:
    """Features added, removed, or changed (type, presence, shape, domain) from A to B."""
    from google.protobuf import text_format

    def by_name(uri):
        return {f.name: f for f in load_schema(uri).feature}

    before, after = by_name(schema_uri_a), by_name(schema_uri_b)
    changes = [f"{name}: added" for name in sorted(after.keys() - before.keys())]
    changes += [f"{name}: removed" for name in sorted(before.keys() - after.keys())]
    for name in sorted(before.keys() & after.keys()):
        if before[name] != after[name]:
            old = text_format.MessageToString(before[name], as_one_line=True)
            new = text_format.MessageToString(after[name], as_one_line=True)
            changes.append(f"{name}: {old} -> {new}")
    return changes


def drift(statistics_uri_a: str, statistics_uri_b: str, schema_uri: str) -> dict[str, dict]:
    """TFDV's drift measure per feature between two StatisticsGen outputs (train split).

    L-infinity distance of value frequencies for string features, approximate
    Jensen-Shannon divergence for numeric ones, as TFDV's drift comparators compute them.
    """
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = load_schema(schema_uri)
    for feature in schema.feature:
        if feature.type == schema_pb2.BYTES:
            feature.drift_comparator.infinity_norm.threshold = 1.0
        else:
            feature.drift_comparator.jensen_shannon_divergence.threshold = 1.0
    anomalies = tfdv.validate_statistics(
        split_statistics(statistics_uri_b, DRIFT_SPLIT),
        schema,
        previous_statistics=split_statistics(statistics_uri_a, DRIFT_SPLIT),
    )
    result = {}
    for info in anomalies.drift_skew_info:
        for measurement in info.drift_measurements:
            result[".".join(info.path.step)] = {
                "measure": measurement.Type.Name(measurement.type).lower(),
                "value": round(measurement.value, 6),
            }
    return dict(sorted(result.items()))


def hyperparameters(best_hyperparameters_uri: str) -> dict:
    """The Tuner's chosen values, from its best_hyperparameters output."""
    path = os.path.join(best_hyperparameters_uri, "best_hyperparameters.txt")
    with open(path) as handle:
        return json.load(handle)["values"]
