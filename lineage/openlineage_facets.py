"""OpenLineage dataset facets from MLMD artifacts: names, schema, row counts, data quality,
input files' SHA-256.

Standard facets come from openlineage-python's generated classes (their _schemaURL names the
spec version); the project's two custom facets (cfpb_inputFiles, cfpb_splits) are described by
lineage/openlineage_facets.json, which their _schemaURL names. Reading an artifact's files can
fail when its pipeline root was cleaned: the facet is then left out, the dataset kept.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlparse

import attr
from openlineage.client.generated import (
    data_quality_assertions_dataset as assertions_facet,
)
from openlineage.client.generated import (
    data_quality_metrics_input_dataset as metrics_facet,
)
from openlineage.client.generated import (
    output_statistics_output_dataset as statistics_facet,
)
from openlineage.client.generated import schema_dataset
from openlineage.client.generated.base import DatasetFacet

from pipeline import names
from pipeline.metadata import artifacts
from pipeline.metadata.store import consumers, custom_property, node_id, run_inputs, run_outputs

# Who wrote the events (OpenLineage wants a URI): the project, by its package name.
PRODUCER = "urn:cfpb-dispute-pipeline:lineage"
FACETS_FILE = os.path.join(os.path.dirname(__file__), "openlineage_facets.json")
FACETS_SCHEMA = "urn:cfpb-dispute-pipeline:openlineage-facets:1-0-0"  # that file's $id
INPUT_FILES, SPLITS = "cfpb_inputFiles", "cfpb_splits"  # custom facets carry a prefix


@attr.define
class InputFilesDatasetFacet(DatasetFacet):
    """The files ExampleGen read, each with its size and SHA-256, and their combined SHA-256."""

    sha256: str
    files: list[dict] = attr.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/InputFilesDatasetFacet"


@attr.define
class SplitsDatasetFacet(DatasetFacet):
    """Examples per split (train, validation, test), from StatisticsGen."""

    splits: dict[str, int] = attr.field(factory=dict)

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/SplitsDatasetFacet"


def dataset_name(uri: str) -> tuple[str, str]:
    """(namespace, name) by OpenLineage's naming: 'file' and the path for local files,
    'gs://bucket' and the object key for object stores."""
    parsed = urlparse(uri)
    if parsed.scheme and parsed.netloc:
        return f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/") or "/"
    return "file", os.path.abspath(parsed.path if parsed.scheme == "file" else uri)


def _readable(read, *args):
    try:
        return read(*args)
    except (OSError, ValueError, KeyError):  # TFX's NotFoundError is an OSError
        return None


def schema_facet(schema_uri: str) -> schema_dataset.SchemaDatasetFacet | None:
    """The features of a Schema artifact (schema.pbtxt): name and type."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = _readable(artifacts.load_schema, schema_uri)
    if schema is None:
        return None
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=feature.name,
                type=schema_pb2.FeatureType.Name(feature.type),
                description=feature.annotation.comment[0] if feature.annotation.comment else None,
                ordinal_position=position,
            )
            for position, feature in enumerate(schema.feature, start=1)
        ],
        producer=PRODUCER,
    )


class ArtifactFacets:
    """Facets of one store's artifacts, each read once (a run's events share most datasets)."""

    def __init__(self, store) -> None:
        self.store = store
        self._statistics: dict[int, object] = {}
        self._schemas: dict[str, object] = {}

    def schema(self, uri: str):
        if uri not in self._schemas:
            self._schemas[uri] = schema_facet(uri)
        return self._schemas[uri]

    def statistics_of(self, examples_id: int):
        """The StatisticsGen output computed from these Examples, if any."""
        if examples_id not in self._statistics:
            found = None
            for execution in consumers(self.store, [examples_id]):
                if node_id(self.store, execution.id) == names.STATISTICS_GEN:
                    found = (run_outputs(self.store, execution.id).get("statistics") or [None])[0]
                    break
            self._statistics[examples_id] = found
        return self._statistics[examples_id]

    def split_counts(self, examples_id: int) -> dict[str, int]:
        statistics = self.statistics_of(examples_id)
        return (_readable(artifacts.split_counts, statistics.uri) or {}) if statistics else {}

    def dataset_facets(self, item, curated_schema_uri: str | None) -> dict:
        """Facets of the dataset itself: schema, input files, splits."""
        facets: dict = {}
        kind = self.store.get_artifact_types_by_id([item.type_id])[0].name
        if kind == "Schema":
            facets["schema"] = self.schema(item.uri)
        elif kind == "Examples":
            if curated_schema_uri:
                facets["schema"] = self.schema(curated_schema_uri)
            files = json.loads(custom_property(item, "input_files") or "[]")
            if files:
                sha256 = str(custom_property(item, "input_sha256") or "")
                facets[INPUT_FILES] = input_files_facet(sha256, files)
            counts = self.split_counts(item.id)
            if counts:
                facets[SPLITS] = SplitsDatasetFacet(splits=counts, producer=PRODUCER)
        return {key: value for key, value in facets.items() if value is not None}

    def output_facets(self, item) -> dict:
        counts = self.split_counts(item.id)
        if not counts:
            return {}
        return {
            "outputStatistics": statistics_facet.OutputStatisticsOutputDatasetFacet(
                rowCount=sum(counts.values()), producer=PRODUCER
            )
        }

    def input_facets(self, item) -> dict:
        """Row count and per-feature counts of missing and present values, all splits."""
        statistics = self.statistics_of(item.id)
        columns = _readable(column_metrics, statistics.uri) if statistics else None
        if columns is None:
            return {}
        rows, by_feature = columns
        return {
            "dataQualityMetrics": metrics_facet.DataQualityMetricsInputDatasetFacet(
                rowCount=rows, columnMetrics=by_feature, producer=PRODUCER
            )
        }


def input_files_facet(sha256: str, files: list[dict]) -> InputFilesDatasetFacet:
    return InputFilesDatasetFacet(
        sha256=sha256,
        files=[{"path": f["path"], "bytes": f["bytes"], "sha256": f["sha256"]} for f in files],
        producer=PRODUCER,
    )


def column_metrics(statistics_uri: str) -> tuple[int, dict]:
    """(rows, {feature: ColumnMetrics(nullCount, count)}) summed over the splits."""
    rows, counts = 0, {}
    for split in artifacts.split_names(statistics_uri):
        dataset = artifacts.split_statistics(statistics_uri, split).datasets[0]
        rows += dataset.num_examples
        for feature in dataset.features:
            which = feature.WhichOneof("stats")
            common = getattr(getattr(feature, which), "common_stats", None) if which else None
            if common is None:
                continue
            name = ".".join(feature.path.step) or feature.name
            present, missing = counts.get(name, (0, 0))
            counts[name] = (present + common.num_non_missing, missing + common.num_missing)
    return rows, {
        name: metrics_facet.ColumnMetrics(nullCount=int(missing), count=float(present))
        for name, (present, missing) in sorted(counts.items())
    }


def gate_facet(store, execution, failed: bool) -> tuple[object, list[str]]:
    """The data gate's result as data-quality assertions on the statistics it checked, and
    its problems in words (what the run's failure report says)."""
    from pipeline.components import data_validation

    inputs = run_inputs(store, execution.id)
    statistics, anomalies = inputs["statistics"][0].uri, inputs["anomalies"][0].uri
    previous = (inputs.get("previous_statistics") or [None])[0]
    compared = previous is not None and previous.uri != statistics
    anomaly, drift = [], []
    if failed:  # a passing gate found nothing; a failed one is asked again what it found
        anomaly = data_validation.anomaly_problems(anomalies)
        if compared:
            schema = inputs["schema"][0].uri
            drift = data_validation.drift_problems(statistics, previous.uri, schema)
    checks = [("schema_anomalies", "no anomalies against the curated schema", anomaly)]
    if compared:
        checks.append(("drift", "no feature drifted past its threshold since the last data", drift))
    facet = assertions_facet.DataQualityAssertionsDatasetFacet(
        assertions=[
            assertions_facet.Assertion(
                assertion=assertion,
                success=not problems,
                name=f"{names.DATA_GATE}.{assertion}",
                description=description,
                severity="error",
                expected="0 problems",
                actual="; ".join(problems) or "0 problems",
            )
            for assertion, description, problems in checks
        ],
        producer=PRODUCER,
    )
    return facet, anomaly + drift
