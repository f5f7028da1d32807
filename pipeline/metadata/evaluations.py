"""The Evaluator's output (a ModelEvaluation folder), as written and as read back.

evaluation.json holds every metric of every test slice as [value, low, high] (a 95% interval),
each group's gap to overall, the last blessed model's metrics on the same rows and the paired
difference, and the blessing's refusals and reasons. Folders written by TFX's TFMA-based
Evaluator (before intervals) are still read, for their point values, where TFMA is installed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from pipeline import names
from pipeline.metadata import files

EVALUATION_FILE = "evaluation.json"
FORMAT = "cfpb-evaluation/1"


@dataclass
class Evaluation:
    split: str
    method: str
    threshold: float
    slices: dict[str, dict]  # slice -> {"example_count": n, metric: [value, low, high]}
    gaps: dict[str, dict] = field(default_factory=dict)  # slice -> {metric: [...]} minus overall
    baseline: dict | None = None  # model_id, model_uri, slices, difference (candidate - it)
    refusals: list[str] = field(default_factory=list)  # why not blessed (fairness apart)
    reasons: list[str] = field(default_factory=list)  # what the blessing weighed
    strict: bool = False
    format: str = FORMAT


def save_evaluation(evaluation: Evaluation, uri: str) -> None:
    from tfx.dsl.io import fileio

    with fileio.open(os.path.join(uri, EVALUATION_FILE), "w") as handle:
        handle.write(json.dumps(asdict(evaluation), indent=2, sort_keys=True))


def load_evaluation(uri: str) -> Evaluation | None:
    """The evaluation in a ModelEvaluation folder; None for one written by TFMA."""
    path = os.path.join(uri, EVALUATION_FILE)
    if not files.exists(path):
        return None
    return Evaluation(**json.loads(files.read(path)))


def slice_estimates(uri: str, model: str | None = None) -> dict[str, dict[str, list]]:
    """{slice: {metric: [value, low, high], "example_count": n}} of the candidate, or of the
    baseline model; a TFMA-written folder's values come without intervals."""
    found = load_evaluation(uri)
    if found is None:
        nan = float("nan")
        return {
            name: {m: v if m == "example_count" else [v, nan, nan] for m, v in by.items()}
            for name, by in _tfma(uri, model)
        }
    return found.slices if model is None else (found.baseline or {}).get("slices", {})


def slice_metrics(uri: str, model: str | None = None) -> dict[str, dict[str, float]]:
    """{slice: {metric: value}} (example_count included), e.g. 'product: Mortgage'."""
    found = load_evaluation(uri)
    if found is None:
        return dict(_tfma(uri, model))
    slices = found.slices if model is None else (found.baseline or {}).get("slices", {})
    return {
        name: {m: (v[0] if isinstance(v, list) else v) for m, v in by.items()}
        for name, by in slices.items()
    }


def overall_metrics(uri: str) -> dict[str, float]:
    return slice_metrics(uri).get(names.OVERALL, {})


def refusals(uri: str) -> list[str]:
    """Why the Evaluator did not bless a model on its metrics (fairness refusals apart)."""
    found = load_evaluation(uri)
    return found.refusals if found is not None else _tfma_failures(uri)


def _tfma(uri: str, model: str | None):
    """(slice, {metric: value}) of a folder TFX's TFMA-based Evaluator wrote."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(uri, model_name=model)
    for slice_key, by_output in result.slicing_metrics:
        name = ", ".join(f"{feature}: {value}" for feature, value in slice_key) or names.OVERALL
        values = next(iter(next(iter(by_output.values())).values()))
        yield (
            name,
            {
                metric: float(values[metric]["doubleValue"])
                for metric in names.REPORTED_METRICS
                if metric in values and "doubleValue" in values[metric]
            },
        )


def _tfma_failures(uri: str) -> list[str]:
    import tensorflow_model_analysis as tfma

    return [
        failure.message or f"{failure.metric_key.name} failed its threshold"
        for per_slice in tfma.load_validation_result(uri).metric_validations_per_slice
        for failure in per_slice.failures
    ]
