"""The Evaluator's baseline: the latest blessed model other than the one being evaluated."""

from __future__ import annotations

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)

CANDIDATE_KEY = "candidate"


class PreviousBlessedModelStrategy(LatestBlessedModelStrategy):
    """LatestBlessedModelStrategy that never returns the candidate model itself.

    A rerun with nothing changed reuses the cached Trainer model, which the previous run
    blessed. Plain LatestBlessedModelStrategy would then return that same model as the
    baseline, so the Evaluator's inputs would change and it and Pusher would run again,
    pushing a second copy. Leaving the candidate out keeps an unchanged rerun fully
    cached, while a newly trained model is still compared with the last blessed one.
    """

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        inputs = dict(input_dict)
        candidate_ids = {artifact.id for artifact in inputs.pop(CANDIDATE_KEY, [])}
        for key, artifacts in inputs.items():
            inputs[key] = [a for a in artifacts if a.id not in candidate_ids]
        result = super().resolve_artifacts(store, inputs)
        return None if result is None else {**result, CANDIDATE_KEY: []}
