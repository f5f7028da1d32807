"""TFX's Evaluator, at the model's decision threshold, with a fairness report and gate.

Before TFMA runs, the executor reads the decision threshold the Trainer saved beside the
SavedModel and adds precision, recall, FPR and FNR at that threshold to the eval config
(the threshold is only known once the model is trained). After TFMA, it builds the
fairness report (each group's gap to the overall slice; fairness.py beside this file), saves
it as fairness.json in the evaluation output, and, when the optional fairness gate is on and a
named group is worse than overall past its margin, takes the blessing back. It also leaves
evaluation_summary.json in the blessing folder: what the Pusher's model card needs.
"""

from __future__ import annotations

import json
import os

import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from google.protobuf.wrappers_pb2 import BoolValue
from tfx import types
from tfx.components import Evaluator
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils, path_utils

from models import features
from pipeline import names
from pipeline.components import fairness
from pipeline.config import PipelineConfig
from pipeline.metadata import artifacts

FAIRNESS_GATE_KEY = "fairness_gate"
CODE_FINGERPRINT_KEY = "code_fingerprint"  # keys the cache only: see pipeline.EVALUATOR_CODE
SUMMARY_FILE = "evaluation_summary.json"
DEFAULT_THRESHOLD = 0.5  # models saved before the Trainer chose one
SPEC = standard_component_specs
# Metrics beyond this many significant digits are noise and would make change
# thresholds flaky.
AUC_EPSILON = 1e-10


class FairEvaluatorSpec(SPEC.EvaluatorSpec):
    PARAMETERS = {
        **SPEC.EvaluatorSpec.PARAMETERS,
        FAIRNESS_GATE_KEY: ExecutionParameter(type=str, optional=True),
        CODE_FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
    }


def model_threshold(model_uri: str) -> dict:
    """The decision record the Trainer saved with the model (models/trainer.py)."""
    from models import trainer

    decision = trainer.saved_threshold(path_utils.serving_model_path(model_uri))
    return decision or {"threshold": DEFAULT_THRESHOLD, "rule": "default (none saved)"}


def with_threshold_metrics(eval_config_json: str, threshold: float) -> str:
    """The eval config with names.THRESHOLD_METRICS computed at `threshold`."""
    import tensorflow_model_analysis as tfma

    config = json_format.Parse(eval_config_json, tfma.EvalConfig())
    for class_name, name in names.THRESHOLD_METRICS.items():
        config.metrics_specs[0].metrics.append(
            tfma.MetricConfig(
                class_name=class_name, config=json.dumps({"thresholds": threshold, "name": name})
            )
        )
    return json_format.MessageToJson(config)


def take_back_blessing(blessing: types.Artifact, reasons: list[str]) -> None:
    """Mark a blessed model NOT_BLESSED, in the file and the property Pusher and resolvers read."""
    blessed_file = os.path.join(blessing.uri, constants.BLESSED_FILE_NAME)
    if fileio.exists(blessed_file):
        fileio.remove(blessed_file)
    with fileio.open(os.path.join(blessing.uri, constants.NOT_BLESSED_FILE_NAME), "w") as handle:
        handle.write("\n".join(reasons))
    blessing.set_int_custom_property(
        constants.ARTIFACT_PROPERTY_BLESSED_KEY, constants.NOT_BLESSED_VALUE
    )


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


class Executor(tfx_evaluator.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        model = artifact_utils.get_single_instance(input_dict[SPEC.MODEL_KEY])
        decision = model_threshold(model.uri)
        properties = dict(exec_properties)
        gate = fairness.GateSettings.from_json(properties.pop(FAIRNESS_GATE_KEY, "") or "")
        properties.pop(CODE_FINGERPRINT_KEY, None)
        properties[SPEC.EVAL_CONFIG_KEY] = with_threshold_metrics(
            properties[SPEC.EVAL_CONFIG_KEY], decision["threshold"]
        )
        super().Do(input_dict, output_dict, properties)

        evaluation = artifact_utils.get_single_instance(output_dict[SPEC.EVALUATION_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[SPEC.BLESSING_KEY])
        by_slice = artifacts.slice_metrics(evaluation.uri)
        report = fairness.build_report(
            by_slice, names.SLICE_KEYS, gate.min_examples, decision["threshold"]
        )
        fairness.apply_gate(report, gate)
        fairness.save_report(report, evaluation.uri)
        blessed = blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
        if report.refusals and blessed:
            take_back_blessing(blessing, report.refusals)
        summary = {
            "decision": decision,
            "metrics": by_slice,
            "fairness": json.loads(report.to_json()),
            "refusals": artifacts.validation_failures(evaluation.uri) + report.refusals,
            "data": data_record(artifact_utils.get_single_instance(input_dict[SPEC.EXAMPLES_KEY])),
            "model": {"uri": model.uri, "id": model.id},
            "evaluation": {"uri": evaluation.uri, "id": evaluation.id},
            "pipeline_run_id": self._context.pipeline_run_id if self._context else None,
        }
        with fileio.open(os.path.join(blessing.uri, SUMMARY_FILE), "w") as handle:
            handle.write(json.dumps(summary, indent=2, sort_keys=True))


class FairEvaluator(Evaluator):
    """Evaluator(examples, model, baseline_model, eval_config) plus the fairness gate's settings."""

    SPEC_CLASS = FairEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        baseline_model: types.BaseChannel,
        eval_config,
        fairness_gate: fairness.GateSettings,
        code_fingerprint: str = "",
    ) -> None:
        spec = FairEvaluatorSpec(
            examples=examples,
            model=model,
            baseline_model=baseline_model,
            fairness_indicator_thresholds=json_utils.dumps(None),
            example_splits=json_utils.dumps(None),
            eval_config=eval_config,
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            fairness_gate=fairness_gate.to_json(),
            code_fingerprint=code_fingerprint,
        )
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Metrics overall and by names.SLICE_KEYS; blessing thresholds on the overall slice only.

    Precision and recall also at names.FIXED_THRESHOLDS; the Evaluator adds the metrics at
    the model's own decision threshold when it runs (pipeline/components/evaluator.py).
    """
    overall = [tfma.SlicingSpec()]
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.min_auc}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.max_auc_drop - AUC_EPSILON},
        ),
    )
    metrics = [tfma.MetricConfig(class_name=name) for name in names.EVAL_METRICS if name != "AUC"]
    metrics += [
        tfma.MetricConfig(
            class_name=class_name,
            config=json.dumps(
                {
                    "thresholds": threshold,
                    "name": names.at_threshold(names.THRESHOLD_METRICS[class_name], threshold),
                }
            ),
        )
        for threshold in names.FIXED_THRESHOLDS
        for class_name in names.FIXED_THRESHOLD_METRICS
    ]
    metrics.append(
        tfma.MetricConfig(
            class_name="AUC",
            per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=overall, threshold=auc_threshold)
            ],
        )
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=features.LABEL_KEY,
                prediction_key=features.PREDICTION_KEY,
                # Said, not guessed: TFMA would load the model once more to find out (2 s).
                model_type=tfma.TF_KERAS,
            )
        ],
        # Not the metrics the model was compiled with: TFMA loaded the Keras model once more
        # to compute them (11 s of the Evaluator's 30), and their "auc" shadowed TFMA's own.
        options=tfma.Options(include_default_metrics=BoolValue(value=False)),
        slicing_specs=overall + [tfma.SlicingSpec(feature_keys=[key]) for key in names.SLICE_KEYS],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )


def fairness_gate_settings(config: PipelineConfig) -> fairness.GateSettings:
    return fairness.GateSettings(
        groups=fairness.parse_groups(config.fairness_gate),
        max_auc_gap=config.fairness_max_auc_gap,
        max_fnr_gap=config.fairness_max_fnr_gap,
        min_examples=config.min_slice_examples,
    )
