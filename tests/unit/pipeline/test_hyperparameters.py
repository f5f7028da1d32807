"""A run tunes when asked or when MLMD holds no tuned hyperparameters; otherwise it reuses them."""

from __future__ import annotations

import ml_metadata as mlmd
import pytest
from conftest import ir_graph, remote_config
from ml_metadata.proto import metadata_store_pb2

from pipeline import hyperparameters, names
from pipeline.config import PipelineConfig
from pipeline.metadata.store import PIPELINE_CONTEXT
from pipeline.pipeline import create_pipeline


def record_hyperparameters(config: PipelineConfig, pipeline_name: str, state) -> None:
    """A HyperParameters artifact in a pipeline's context, as a finished Tuner leaves it."""
    store = mlmd.MetadataStore(config.metadata_connection_config())
    type_id = store.put_artifact_type(
        metadata_store_pb2.ArtifactType(name=hyperparameters.HYPERPARAMETERS_TYPE)
    )
    context_type = store.put_context_type(metadata_store_pb2.ContextType(name=PIPELINE_CONTEXT))
    existing = store.get_context_by_type_and_name(PIPELINE_CONTEXT, pipeline_name)
    context_id = (
        existing.id
        if existing
        else store.put_contexts(
            [metadata_store_pb2.Context(type_id=context_type, name=pipeline_name)]
        )[0]
    )
    [artifact_id] = store.put_artifacts(
        [metadata_store_pb2.Artifact(type_id=type_id, uri="/tmp/hp", state=state)]
    )
    store.put_attributions_and_associations(
        [metadata_store_pb2.Attribution(context_id=context_id, artifact_id=artifact_id)], []
    )


def nodes(config: PipelineConfig, **options) -> dict[str, list[str]]:
    return ir_graph(create_pipeline(config, **options))


def test_a_new_pipeline_tunes(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path))
    graph = nodes(config)
    assert names.TUNER in graph[names.TRAINER]
    assert names.HYPERPARAMETERS_RESOLVER not in graph
    assert not config.metadata_path.exists()  # deciding did not create a store


def test_tuned_hyperparameters_are_reused_unless_tune_is_asked(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path))
    record_hyperparameters(config, config.pipeline_name, metadata_store_pb2.Artifact.LIVE)
    graph = nodes(config)
    assert names.TUNER not in graph
    assert names.HYPERPARAMETERS_RESOLVER in graph[names.TRAINER]
    tuned = nodes(PipelineConfig(output_dir=str(tmp_path), tune=True))
    assert names.TUNER in tuned[names.TRAINER] and names.HYPERPARAMETERS_RESOLVER not in tuned


@pytest.mark.parametrize(
    ("pipeline_name", "state"),
    [
        ("another-pipeline", metadata_store_pb2.Artifact.LIVE),  # not this pipeline's
        ("cfpb-dispute", metadata_store_pb2.Artifact.PENDING),  # a Tuner that did not finish
    ],
)
def test_only_this_pipelines_published_hyperparameters_count(tmp_path, pipeline_name, state):
    config = PipelineConfig(output_dir=str(tmp_path))
    record_hyperparameters(config, pipeline_name, state)
    assert hyperparameters.should_tune(config)


def test_kubeflow_tunes_every_run_its_store_is_not_readable_here():
    assert hyperparameters.should_tune(remote_config())
