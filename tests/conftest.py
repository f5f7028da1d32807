"""Shared fixtures: real CFPB rows prepared, and a real tf.Transform run over them."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from data import prepare  # noqa: E402
from models import features  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from pipeline import names  # noqa: E402

# The model server's fixtures: a real SavedModel and a shared server process.
pytest_plugins = ["support.serving_fixtures"]

FIXTURES = Path(__file__).parent / "fixtures"
# Runner flags for pipeline runs in tests: a few steps of everything, any AUC blessed.
TINY_RUN_FLAGS = [
    "--train-steps",
    "10",
    "--tuner-trials",
    "1",
    "--tuner-train-steps",
    "5",
    "--min-auc",
    "0.0",
]
FIXTURE_EXPORTS = sorted(FIXTURES.glob("*.csv"))
# The components a pushed model's lineage passes through, data to push.
MODEL_CHAIN = (
    names.EXAMPLE_GEN,
    names.TRANSFORM,
    names.TUNER,
    names.TRAINER,
    names.EVALUATOR,
    names.PUSHER,
)


@pytest.fixture(autouse=True)
def _logging_enabled():
    """Commands run in-process (the monitor's main) may switch logging off for the process;
    each test starts with it on."""
    logging.disable(logging.NOTSET)
    yield


@pytest.fixture(scope="session")
def prepared_csv(tmp_path_factory) -> Path:
    """The fixture exports (heads of the three real extracts) prepared: 132 labelled rows."""
    output = tmp_path_factory.mktemp("prepared") / "complaints.csv"
    prepare.prepare_cfpb_exports(FIXTURE_EXPORTS, output)
    return output


@pytest.fixture(scope="session")
def raw_rows(prepared_csv) -> list[dict]:
    with open(prepared_csv, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def pytest_collection_modifyitems(items) -> None:
    """Tests under tests/e2e/ (pipeline runs, servers, Airflow, KFP, notebook) are marked e2e:
    `./test.sh -m "not e2e"` runs the fast unit tier."""
    e2e_dir = Path(__file__).parent / "e2e"
    for item in items:
        if e2e_dir in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


def bundled_rows(every: int = 1) -> list[dict]:
    """Every `every`-th row of the bundled sample, as the prepared CSV's columns."""
    from pipeline.config import BUNDLED_DATA_DIR

    with open(BUNDLED_DATA_DIR / "complaints.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))[::every]


def write_rows(rows: list[dict], path: Path) -> Path:
    """Rows as a prepared CSV (the first row's columns), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_quarter_sample(data_dir: Path) -> Path:
    """Every 4th row of the bundled sample (about 1,650 rows) as data_dir/complaints.csv."""
    return write_rows(bundled_rows(every=4), data_dir / "complaints.csv")


def running_nodes(store, pipeline_name: str) -> set[str]:
    """Node ids of the pipeline's executions that MLMD has as RUNNING now."""
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.metadata import store as lineage

    pipeline = store.get_context_by_type_and_name(lineage.PIPELINE_CONTEXT, pipeline_name)
    executions = store.get_executions_by_context(pipeline.id) if pipeline else []
    return {
        lineage.node_id(store, e.id)
        for e in executions
        if e.last_known_state == metadata_store_pb2.Execution.RUNNING
    }


def pipeline_graph(tfx_pipeline) -> dict[str, list[str]]:
    """Node id -> sorted upstream node ids, as the pipeline definition declares them."""
    return {c.id: sorted(n.id for n in c.upstream_nodes) for c in tfx_pipeline.components}


def ir_graph(tfx_pipeline) -> dict[str, list[str]]:
    """The graph of the IR that BeamDagRunner and LocalDagRunner execute."""
    from tfx.dsl.compiler.compiler import Compiler

    ir = Compiler().compile(tfx_pipeline)
    return {
        node.pipeline_node.node_info.id: sorted(node.pipeline_node.upstream_nodes)
        for node in ir.nodes
    }


def remote_config():
    """A config whose data and outputs are on object storage, as on Kubeflow or Vertex AI."""
    from pipeline.config import PipelineConfig

    return PipelineConfig(
        data_dir="gs://bucket/cfpb/data", output_dir="gs://bucket/cfpb", train_steps=123
    )


def raw_feature_spec() -> dict:
    """The spec SchemaGen infers for the pipeline's examples: every feature of shape [1]."""
    import tensorflow as tf

    spec = {key: tf.io.FixedLenFeature([1], tf.string) for key in features.RAW_FEATURE_KEYS}
    spec[features.LABEL_KEY] = tf.io.FixedLenFeature([1], tf.int64)
    return spec


def as_instance(row: dict) -> dict:
    instance = {key: [row[key].encode()] for key in features.RAW_FEATURE_KEYS}
    instance[features.LABEL_KEY] = [int(row[features.LABEL_KEY])]
    return instance


@pytest.fixture(scope="session")
def transformed(raw_rows, tmp_path_factory):
    """(TFTransformOutput, transformed instances) from a real tf.Transform Beam run."""
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from models.preprocessing import preprocessing_fn

    output_dir = tmp_path_factory.mktemp("transform")
    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(raw_feature_spec())
    )
    with tft_beam.Context(temp_dir=str(output_dir / "tmp")):
        (instances, _), transform_fn = (
            [as_instance(row) for row in raw_rows],
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(output_dir / "transform_fn"))
    metadata_io.write_metadata(metadata, str(output_dir / "transform_fn" / "metadata"))
    return tft.TFTransformOutput(str(output_dir / "transform_fn")), instances
