"""Resolvers that look back: the latest artifact other than the one this run just made."""

from __future__ import annotations

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)

CANDIDATE_KEY = "candidate"


class _WithoutCandidate:
    """Leaves the artifacts given as `candidate` out of what the strategy may return.

    A rerun with nothing changed reuses cached outputs; without this, the strategy would
    return this run's own artifact (its model as its own baseline, its statistics as the
    previous data), the downstream inputs would change, and the rerun would not be fully
    cached. Nothing found is an empty list, not a skipped run.
    """

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]]:
        inputs = dict(input_dict)
        candidate_ids = {artifact.id for artifact in inputs.pop(CANDIDATE_KEY, [])}
        for key, artifacts in inputs.items():
            inputs[key] = [a for a in artifacts if a.id not in candidate_ids]
        result = super().resolve_artifacts(store, inputs) or {key: [] for key in inputs}
        return {**result, CANDIDATE_KEY: []}


class PreviousBlessedModelStrategy(_WithoutCandidate, LatestBlessedModelStrategy):
    """The Evaluator's baseline: the latest blessed model other than the candidate."""


class PreviousArtifactStrategy(_WithoutCandidate, LatestArtifactStrategy):
    """The latest artifact of a channel, written by `producer_node`, other than the candidate.

    Filtering by producer here, not in the channel, because a channel filtered on
    StatisticsGen's output would be the same channel as the candidate, which TFX's input
    resolution merges into one. Transform also writes ExampleStatistics.
    """

    def __init__(self, producer_node: str = "", desired_num_of_artifacts: int = 1) -> None:
        super().__init__(desired_num_of_artifacts)
        self._producer_node = producer_node

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]]:
        if self._producer_node:
            input_dict = {
                key: [
                    a
                    for a in artifacts
                    if key == CANDIDATE_KEY or self._produced_by_node(store, a.id)
                ]
                for key, artifacts in input_dict.items()
            }
        return super().resolve_artifacts(store, input_dict)

    def _produced_by_node(self, store: mlmd.MetadataStore, artifact_id: int) -> bool:
        from pipeline.metadata.store import LineageError, producer

        try:
            return producer(store, artifact_id)[0] == self._producer_node
        except LineageError:  # not produced by any node, e.g. imported
            return False
