"""The Evaluator: the candidate and the last blessed model scored on the same test rows, every
metric with a 95% interval, a blessing that knows the noise, the fairness report and gate.

TFMA computed each metric per example in Python, six combiners per slice, with no intervals and
no paired comparison; here both models score the test split in batches (their serving
signature, the transform inside) and pipeline/components/metrics.py computes every metric, per
slice, from one Poisson bootstrap. The blessing (judge) asks two things: is the candidate's AUC
at least --min-auc (its point estimate), and is it significantly worse than the last blessed
model on the same rows (the paired difference's interval wholly below -max_auc_drop; or, with
--strict-auc-comparison, its point estimate). The outputs are TFX's: a ModelEvaluation folder
(evaluation.json, fairness.json) and a ModelBlessing with the properties the Pusher and the
resolvers read; evaluation_summary.json in the blessing folder is what the model card needs.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import path_utils

from pipeline import names
from pipeline.components import fairness, metrics
from pipeline.config import PipelineConfig
from pipeline.metadata import artifacts, evaluations

SETTINGS_KEY = "settings"
CODE_FINGERPRINT_KEY = "code_fingerprint"  # keys the cache only: see provenance.EVALUATOR_CODE
SUMMARY_FILE = "evaluation_summary.json"
DEFAULT_THRESHOLD = 0.5  # models saved before the Trainer chose one
BATCH = 4096  # examples per model call
SPEC = standard_component_specs


@dataclass(frozen=True)
class EvaluationSettings:
    """What the Evaluator judges by; all from PipelineConfig (evaluation_settings)."""

    min_auc: float = 0.55
    max_auc_drop: float = 0.0
    strict_auc_comparison: bool = False
    resamples: int = metrics.RESAMPLES
    seed: int = 0
    gate: fairness.GateSettings = field(default_factory=fairness.GateSettings)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EvaluationSettings:
        values = json.loads(text)
        values["gate"] = fairness.GateSettings.from_json(json.dumps(values["gate"]))
        return cls(**values)


def evaluation_settings(config: PipelineConfig) -> EvaluationSettings:
    return EvaluationSettings(
        min_auc=config.min_auc,
        max_auc_drop=config.max_auc_drop,
        strict_auc_comparison=config.strict_auc_comparison,
        resamples=config.bootstrap_resamples,
        seed=config.seed,
        gate=fairness.GateSettings(
            groups=fairness.parse_groups(config.fairness_gate),
            max_auc_gap=config.fairness_max_auc_gap,
            max_fnr_gap=config.fairness_max_fnr_gap,
            min_examples=config.min_slice_examples,
        ),
    )


def model_threshold(model_uri: str) -> dict:
    """The decision record the Trainer saved with the model (models/trainer.py)."""
    from models import trainer

    decision = trainer.saved_threshold(path_utils.serving_model_path(model_uri))
    return decision or {"threshold": DEFAULT_THRESHOLD, "rule": "default (none saved)"}


def read_split(examples_uri: str, split: str) -> tuple[list[bytes], np.ndarray, dict]:
    """The split's serialized examples, their labels, and the slice features' values."""
    import tensorflow as tf

    from models import features

    files = fileio.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    spec = {features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, -1)}
    spec.update({key: tf.io.FixedLenFeature([], tf.string, b"") for key in names.SLICE_KEYS})
    parsed = tf.io.parse_example(records, spec) if records else {k: [] for k in spec}
    labels = np.asarray(parsed[features.LABEL_KEY], dtype=np.float64)
    values = {key: [v.decode("utf-8") for v in np.asarray(parsed[key])] for key in names.SLICE_KEYS}
    return records, labels, values


def slice_masks(values: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """'feature: value' -> rows, for every value of every slice feature (TFMA's names)."""
    masks = {}
    for key, column in values.items():
        column = np.asarray(column, dtype=object)
        for value in sorted(set(column)):
            masks[f"{key}: {value}"] = column == value
    return masks


def predict(model_uri: str, records: list[bytes]) -> np.ndarray:
    """The model's dispute probabilities, through its serving signature (transform inside)."""
    import tensorflow as tf

    from models import features

    serve = tf.saved_model.load(path_utils.serving_model_path(model_uri))
    signature = serve.signatures["serving_default"]
    scores = [
        signature(examples=tf.constant(records[start : start + BATCH]))[features.PREDICTION_KEY]
        for start in range(0, len(records), BATCH)
    ]
    return np.concatenate([s.numpy().reshape(-1) for s in scores]) if scores else np.zeros(0)


def judge(found: dict, settings: EvaluationSettings) -> tuple[list[str], list[str]]:
    """(refusals, reasons for the blessing): the AUC floor, and the paired comparison."""
    auc = found["slices"][names.OVERALL].estimates["auc"]
    shown = fairness.estimate_text(auc.as_list(), digits=4)
    refusals, reasons = [], []
    if auc.value >= settings.min_auc:  # nan refuses: a model with one class of labels
        reasons.append(f"auc {shown} is at least {settings.min_auc:.4f}")
    else:
        refusals.append(f"auc {shown} is below the floor {settings.min_auc:.4f}")
    if found["difference"] is None:
        reasons.append("no blessed model to compare with yet")
        return refusals, reasons
    difference = found["difference"][names.OVERALL]["auc"]
    baseline = found["baseline"][names.OVERALL].estimates["auc"]
    allowed = -settings.max_auc_drop
    changed = (
        f"auc changed by {fairness.estimate_text(difference.as_list(), True, 4)} against the "
        f"last blessed model ({baseline.value:.4f}) on the same test rows"
    )
    if settings.strict_auc_comparison and difference.value < allowed - 1e-10:
        refusals.append(f"{changed}; at least {allowed:+.4f} is required (strict: by the estimate)")
    elif not settings.strict_auc_comparison and difference.high < allowed:
        refusals.append(
            f"{changed}: significantly worse, the whole 95% interval is below {allowed:+.4f}"
        )
    elif settings.strict_auc_comparison:
        reasons.append(f"{changed}; at least {allowed:+.4f} is required (strict: by the estimate)")
    else:
        reasons.append(f"{changed}: not significantly worse than {allowed:+.4f}")
    return refusals, reasons


def estimates_json(result: metrics.SliceResult) -> dict:
    return {"example_count": result.examples} | {
        m: e.as_list() for m, e in result.estimates.items()
    }


def data_record(examples: types.Artifact) -> dict:
    """Span, examples per split and input file hashes of the Examples evaluated."""
    import tensorflow as tf

    rows = {}
    for split in artifacts.split_names(examples.uri):
        files = fileio.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
        rows[split] = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
    files = examples.get_string_custom_property("input_files")  # '' where not recorded
    try:
        input_files = json.loads(files) if files else []
    except ValueError:  # an orchestrator that carried the property in another form
        input_files = []
    return {
        "examples_uri": examples.uri,
        "examples_id": examples.id,
        "span": examples.span if examples.has_property("span") else 0,
        "rows": rows,
        "input_sha256": examples.get_string_custom_property("input_sha256"),
        "input_files": input_files,
    }


def bless(blessing: types.Artifact, model, baseline, refusals: list[str]) -> None:
    """The blessing as TFX's Evaluator writes it: its file and the properties that the Pusher
    and the blessed-model resolvers read."""
    blessing.set_string_custom_property(
        constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri
    )
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if baseline is not None:
        blessing.set_string_custom_property(
            constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri
        )
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id
        )
    name = constants.NOT_BLESSED_FILE_NAME if refusals else constants.BLESSED_FILE_NAME
    with fileio.open(os.path.join(blessing.uri, name), "w") as handle:
        handle.write("\n".join(refusals))
    value = constants.NOT_BLESSED_VALUE if refusals else constants.BLESSED_VALUE
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, value)


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        settings = EvaluationSettings.from_json(exec_properties[SETTINGS_KEY])
        examples = artifact_utils.get_single_instance(input_dict[SPEC.EXAMPLES_KEY])
        model = artifact_utils.get_single_instance(input_dict[SPEC.MODEL_KEY])
        baseline = (input_dict.get(SPEC.BASELINE_MODEL_KEY) or [None])[0]
        evaluation = artifact_utils.get_single_instance(output_dict[SPEC.EVALUATION_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[SPEC.BLESSING_KEY])
        for folder in (evaluation.uri, blessing.uri):  # KFP's launcher makes no output folders
            fileio.makedirs(folder)

        decision = model_threshold(model.uri)
        started = time.perf_counter()
        records, labels, values = read_split(examples.uri, names.TEST)
        if not records:
            raise ValueError(f"the test split of {examples.uri} is empty: nothing to judge")
        scores = predict(model.uri, records)
        baseline_scores = predict(baseline.uri, records) if baseline is not None else None
        scored = time.perf_counter()
        found = metrics.evaluate_slices(
            scores,
            labels,
            slice_masks(values),
            decision["threshold"],
            baseline_scores,
            settings.resamples,
            settings.seed,
        )
        method = f"{metrics.METHOD}, {settings.resamples} resamples, seed {settings.seed}"
        refusals, reasons = judge(found, settings)
        slices = {name: estimates_json(r) for name, r in found["slices"].items()}
        gaps = {name: {m: e.as_list() for m, e in by.items()} for name, by in found["gaps"].items()}
        report = fairness.build_report(
            slices,
            gaps,
            names.SLICE_KEYS,
            settings.gate.min_examples,
            decision["threshold"],
            method,
        )
        fairness.apply_gate(report, settings.gate)
        fairness.save_report(report, evaluation.uri)
        result = evaluations.Evaluation(
            split=names.TEST,
            method=method,
            threshold=decision["threshold"],
            slices=slices,
            gaps=gaps,
            baseline=None
            if baseline is None
            else {
                "model_id": baseline.id,
                "model_uri": baseline.uri,
                "slices": {n: estimates_json(r) for n, r in found["baseline"].items()},
                "difference": {
                    n: {m: e.as_list() for m, e in by.items()}
                    for n, by in found["difference"].items()
                },
            },
            refusals=refusals,
            reasons=reasons,
            strict=settings.strict_auc_comparison,
        )
        evaluations.save_evaluation(result, evaluation.uri)
        bless(blessing, model, baseline, refusals + report.refusals)
        logging.info(
            "Evaluator: %d test rows scored by %d model(s) in %.1f s; intervals and blessing in "
            "%.1f s",
            len(records),
            1 + (baseline is not None),
            scored - started,
            time.perf_counter() - scored,
        )
        summary = {
            "decision": decision,
            "metrics": slices,
            "method": method,
            "fairness": json.loads(report.to_json()),
            "refusals": refusals + report.refusals,
            "reasons": reasons,
            "data": data_record(examples),
            "model": {"uri": model.uri, "id": model.id},
            "evaluation": {"uri": evaluation.uri, "id": evaluation.id},
            "pipeline_run_id": self._context.pipeline_run_id if self._context else None,
        }
        with fileio.open(os.path.join(blessing.uri, SUMMARY_FILE), "w") as handle:
            handle.write(json.dumps(summary, indent=2, sort_keys=True))


class BootstrapEvaluatorSpec(ComponentSpec):
    PARAMETERS = {
        SETTINGS_KEY: ExecutionParameter(type=str),
        CODE_FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        SPEC.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        SPEC.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        SPEC.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        SPEC.EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        SPEC.BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class BootstrapEvaluator(base_component.BaseComponent):
    """Evaluator(examples, model, baseline_model, settings): see the module's docstring."""

    SPEC_CLASS = BootstrapEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        baseline_model: types.BaseChannel,
        settings: EvaluationSettings,
        code_fingerprint: str = "",
    ) -> None:
        super().__init__(
            BootstrapEvaluatorSpec(
                examples=examples,
                model=model,
                baseline_model=baseline_model,
                settings=settings.to_json(),
                code_fingerprint=code_fingerprint,
                evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
