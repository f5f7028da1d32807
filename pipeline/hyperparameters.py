"""Whether a run tunes, or reuses the hyperparameters an earlier run tuned.

Tuning costs more than training (trials x steps) and, on unchanged code, finds about the same
values run after run. As TFX's documentation recommends for production, a run reuses the
latest tuned hyperparameters through a resolver, and tunes only when asked (--tune) or when
the pipeline has none yet. Decided when the graph is built, from MLMD: the runners and the
notebook build the same graph for the same store.
"""

from __future__ import annotations

from pathlib import Path

from ml_metadata.proto import metadata_store_pb2

from pipeline.config import PipelineConfig
from pipeline.metadata.store import PIPELINE_CONTEXT, connect

HYPERPARAMETERS_TYPE = "HyperParameters"


def tuned_before(config: PipelineConfig) -> bool:
    """True if this pipeline's MLMD holds hyperparameters a Tuner produced (and published).

    False where the store cannot be read from here (KFP and Vertex AI bring their own MLMD),
    so every run there tunes, as before: see docs/kubeflow.md.
    """
    connection = config.metadata_connection_config()
    if connection is None:
        return False
    if connection.HasField("sqlite") and not Path(connection.sqlite.filename_uri).exists():
        return False
    # With retries: runs starting at once on an empty MySQL database race to create MLMD's tables.
    store = connect(connection)
    pipeline = store.get_context_by_type_and_name(PIPELINE_CONTEXT, config.pipeline_name)
    if pipeline is None:
        return False
    return any(
        artifact.state == metadata_store_pb2.Artifact.LIVE
        for artifact in store.get_artifacts_by_context(pipeline.id)
        if artifact.type == HYPERPARAMETERS_TYPE
    )


def should_tune(config: PipelineConfig) -> bool:
    """Tune when asked, or when there is nothing to reuse."""
    return config.tune or not tuned_before(config)
