"""What `python -m monitoring` compares: a window of logged requests against the statistics,
curated schema and test split of the model that served them, found through MLMD lineage.

TFDV does the feature checks: statistics of the window's raw feature values, then
validate_statistics with the training statistics and the schema (skew comparators, domains,
presence). The prediction shift compares the window's dispute probabilities with the served
model's own predictions on its test split, scored here at monitor time.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

import numpy as np

from cli import bounds
from models import features
from pipeline import names

SERVING, TRAINING = "SERVING", "TRAINING"
PSI_FLOOR = 1e-4  # a bin's share is at least this, so an empty bin gives a large, finite PSI
PREDICTION_BINS = 10


class MonitorError(ValueError):
    """Input the monitor cannot judge (a missing log, an unknown version, ...): exit 2."""


@dataclass(frozen=True)
class Thresholds:
    """Every alert threshold in one place (each is also a flag of python -m monitoring).

    A skew_comparator that the curated schema sets on a feature wins over skew_linf, so a
    per-feature threshold can be versioned with the schema and so with the model.
    """

    skew_linf: float = 0.15  # L-infinity distance of a category's value frequencies
    prediction_psi: float = 0.25  # population stability index over the test split's deciles
    min_rows: int = 100  # fewer predictions are noise, not evidence of a shift


# Their allowed values: a threshold of nan or below 0 would never (or always) alert.
THRESHOLD_BOUNDS = {
    "skew_linf": bounds.Range(0.0, 1.0, above=True, meaning="an L-infinity distance"),
    "prediction_psi": bounds.Range(0.0, 100.0, above=True, meaning="a PSI"),
    "min_rows": bounds.count(1),
}


@dataclass
class Baseline:
    """What the served version was trained and evaluated on, from MLMD."""

    model_version: int
    model_dir: str  # the SavedModel that served
    schema: object  # schema_pb2.Schema, the curated one the model's Transform read
    train_statistics: object  # DatasetFeatureStatisticsList, StatisticsGen's train split
    test_files: list[str]
    sources: dict[str, str] = field(default_factory=dict)  # what came from where, for the report


def _first_output(store, examples_id: int, node: str, key: str):
    from pipeline.metadata.store import consumers, node_id, run_outputs

    for execution in consumers(store, [examples_id]):
        if node_id(store, execution.id) == node:
            found = run_outputs(store, execution.id).get(key)
            if found:
                return found[0]
    return None


def find_baseline(store, model_version: int) -> Baseline:
    """The push of this version, its model, and upstream: examples, statistics, schema."""
    from pipeline.metadata import artifacts
    from pipeline.metadata.store import producer, pushed_destination, run_inputs

    pushes = [
        pushed
        for pushed in store.get_artifacts_by_type("PushedModel")
        if pushed_destination(pushed)
        and os.path.basename(pushed_destination(pushed).rstrip("/")) == str(model_version)
    ]
    if not pushes:
        raise MonitorError(
            f"model version {model_version} was never pushed according to this MLMD store: "
            "point --output-dir (or --mysql-host) at the store of the pipeline that pushed it"
        )
    pushed = max(pushes, key=lambda a: a.create_time_since_epoch)
    _, pusher = producer(store, pushed.id)
    model = run_inputs(store, pusher.id)["model"][0]
    _, trainer = producer(store, model.id)
    _, transform = producer(store, run_inputs(store, trainer.id)["examples"][0].id)
    transform_inputs = run_inputs(store, transform.id)
    examples, schema = transform_inputs["examples"][0], transform_inputs["schema"][0]
    statistics = _first_output(store, examples.id, names.STATISTICS_GEN, "statistics")
    if statistics is None:
        raise MonitorError(
            f"no StatisticsGen output for examples {examples.id} (model version {model_version})"
        )
    model_dir = pushed_destination(pushed)
    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        model_dir = os.path.join(model.uri, "Format-Serving")  # pushed copy removed since
    test_files = sorted(glob.glob(os.path.join(examples.uri, "Split-test", "*")))
    if not test_files:
        raise MonitorError(f"the test split of examples {examples.id} is gone: {examples.uri}")
    try:
        train_statistics = artifacts.split_statistics(statistics.uri, "train")
        curated = artifacts.load_schema(schema.uri)
    except Exception as error:  # noqa: BLE001 (TFDV raises file-system errors of its own)
        raise MonitorError(
            f"cannot read the baseline of version {model_version}: {error}"
        ) from None
    return Baseline(
        model_version=model_version,
        model_dir=model_dir,
        schema=curated,
        train_statistics=train_statistics,
        test_files=test_files,
        sources={
            "pushed model": f"{pushed.id} -> {pushed_destination(pushed)}",
            "model": f"{model.id} {model.uri}",
            "training statistics": f"{statistics.id} {statistics.uri}/Split-train",
            "schema": f"{schema.id} {schema.uri} ({names.SCHEMA_IMPORTER})",
            "test examples": f"{examples.id} {examples.uri}/Split-test",
        },
    )


def serving_schema(curated, logged: set[str], thresholds: Thresholds):
    """A copy of the curated schema for serving data: the label and the features the log does
    not keep are TRAINING-only, and each logged category gets an L-infinity skew comparator.

    Only this in-memory copy changes; the file that drives the data gate is not touched.
    """
    schema = type(curated)()
    schema.CopyFrom(curated)
    del schema.default_environment[:]
    schema.default_environment.extend([TRAINING, SERVING])
    for feature in schema.feature:
        if feature.name == features.LABEL_KEY or feature.name not in logged:
            feature.not_in_environment.append(SERVING)
        elif feature.name in features.CATEGORICAL_KEYS and not feature.HasField("skew_comparator"):
            feature.skew_comparator.infinity_norm.threshold = thresholds.skew_linf
    return schema


def window_statistics(rows: list[dict], names_kept: set[str]):
    """TFDV statistics of the window's raw feature values, as StatisticsGen computes them."""
    import pyarrow as pa
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics import stats_impl

    columns = {}
    for name in sorted(names_kept):
        values = []
        for row in rows:
            value = row.get(name)
            if value is None:
                values.append(None)  # the feature was not sent: missing, as TFDV counts it
            else:
                items = value if isinstance(value, list) else [value]
                values.append([str(item).encode("utf-8") for item in items])
        columns[name] = pa.array(values, type=pa.list_(pa.binary()))
    batch = pa.RecordBatch.from_arrays(list(columns.values()), list(columns))
    return stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())


@dataclass
class FeatureSkew:
    feature: str
    measure: str
    value: float
    threshold: float

    @property
    def alert(self) -> bool:
        return self.value > self.threshold


@dataclass
class Anomaly:
    feature: str
    kind: str  # TFDV's reason, e.g. ENUM_TYPE_UNEXPECTED_STRING_VALUES
    description: str


def check_features(baseline: Baseline, rows: list[dict], logged: set[str], thresholds):
    """(skew per feature, anomalies of the window against the schema, values unseen in training,
    window statistics)."""
    import tensorflow_data_validation as tfdv

    schema = serving_schema(baseline.schema, logged, thresholds)
    kept = {f.name for f in schema.feature if SERVING not in f.not_in_environment}
    stats = window_statistics(rows, kept)
    skew_result = tfdv.validate_statistics(
        baseline.train_statistics, schema, environment=TRAINING, serving_statistics=stats
    )
    skews = [
        FeatureSkew(
            ".".join(info.path.step),
            measurement.Type.Name(measurement.type).lower(),
            round(measurement.value, 6),
            measurement.threshold,
        )
        for info in skew_result.drift_skew_info
        for measurement in info.skew_measurements
    ]
    served = tfdv.validate_statistics(stats, schema, environment=SERVING)
    anomalies = [
        Anomaly(name, _reason_name(reason.type), reason.description)
        for name, info in sorted(served.anomaly_info.items())
        for reason in info.reason
    ]
    return sorted(skews, key=lambda s: -s.value), anomalies, unseen_values(baseline, rows, kept)


def _reason_name(reason_type: int) -> str:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    return anomalies_pb2.AnomalyInfo.Type.Name(reason_type)


def unseen_values(baseline: Baseline, rows: list[dict], kept: set[str]) -> dict[str, dict]:
    """Per category without a domain: values the training split never had, with their counts.

    Only where the training statistics list every value (fewer distinct values than the rank
    histogram's buckets); otherwise "unseen" cannot be told from "not in the top N".
    """
    found = {}
    by_name = {
        ".".join(f.path.step) or f.name: f for f in baseline.train_statistics.datasets[0].features
    }
    for name in features.CATEGORICAL_KEYS:
        train = by_name.get(name)
        if name not in kept or train is None or not train.HasField("string_stats"):
            continue
        buckets = train.string_stats.rank_histogram.buckets
        if not buckets or train.string_stats.unique > len(buckets):
            continue
        known = {bucket.label for bucket in buckets}
        counts: dict[str, int] = {}
        for row in rows:
            value = row.get(name)
            for item in value if isinstance(value, list) else [value]:
                if item is not None and str(item) not in known:
                    counts[str(item)] = counts.get(str(item), 0) + 1
        if counts:
            found[name] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    return found


def test_predictions(baseline: Baseline, batch_size: int = 512) -> np.ndarray:
    """The served SavedModel's dispute probabilities on its test split (ExampleGen's TFRecords)."""
    import tensorflow as tf

    try:
        signature = tf.saved_model.load(baseline.model_dir).signatures["serving_default"]
    except Exception as error:  # noqa: BLE001 (TF raises many kinds for a bad folder)
        raise MonitorError(f"cannot load the served model {baseline.model_dir}: {error}") from None
    dataset = tf.data.TFRecordDataset(baseline.test_files, compression_type="GZIP")
    scored = [
        signature(examples=batch)[features.PREDICTION_KEY].numpy()
        for batch in dataset.batch(batch_size)
    ]
    return np.concatenate(scored) if scored else np.array([], dtype=np.float32)


@dataclass
class PredictionShift:
    psi: float
    linf: float
    threshold: float
    edges: list[float]  # bin edges over [0, 1]: the test split's deciles and the tenths
    test_share: list[float]
    window_share: list[float]
    test_count: int
    window_count: int
    test_mean: float
    window_mean: float

    @property
    def alert(self) -> bool:
        return self.psi > self.threshold


def prediction_shift(test_scores, window_scores, threshold: float) -> PredictionShift:
    """PSI (and L-infinity) between the two distributions, binned at the test split's deciles
    and at every tenth of [0, 1].

    The deciles resolve a model whose predictions sit in a narrow band (one trained a few
    steps), where tenths alone would put everything in one or two bins; the tenths still
    separate values when the test predictions are one constant and the deciles collapse.
    """
    test_scores, window_scores = np.asarray(test_scores), np.asarray(window_scores)
    tenths = np.linspace(0, 1, PREDICTION_BINS + 1)
    edges = np.unique(np.round(np.concatenate([tenths, np.quantile(test_scores, tenths)]), 6))
    expected = np.histogram(np.clip(test_scores, 0, 1), edges)[0] / len(test_scores)
    actual = np.histogram(np.clip(window_scores, 0, 1), edges)[0] / len(window_scores)
    e, a = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
    return PredictionShift(
        psi=round(float(np.sum((a - e) * np.log(a / e))), 6),
        linf=round(float(np.max(np.abs(actual - expected))), 6),
        threshold=threshold,
        edges=[float(x) for x in edges],
        test_share=[float(x) for x in expected],
        window_share=[float(x) for x in actual],
        test_count=len(test_scores),
        window_count=len(window_scores),
        test_mean=float(test_scores.mean()),
        window_mean=float(window_scores.mean()),
    )
