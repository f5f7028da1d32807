"""The one pipeline definition every runner and the notebook use."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from google.protobuf.wrappers_pb2 import BoolValue
from tfx import components  # not tfx.v1, see the note below the imports
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.orchestration.data_types import RuntimeParameter
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, range_config_pb2, trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from lineage import fairness
from models import features
from pipeline import checks, hyperparameters, names
from pipeline.components import example_gen, provenance
from pipeline.components.baseline import (
    CANDIDATE_KEY,
    PreviousArtifactStrategy,
    PreviousBlessedModelStrategy,
)
from pipeline.components.evaluator import FairEvaluator
from pipeline.components.gates import DataValidationGate
from pipeline.components.push import AtomicPusherExecutor
from pipeline.components.schema_importer import CuratedSchemaImporter
from pipeline.config import PROJECT_ROOT, PipelineConfig

# tfx.v1 is not imported on the runner path: its extensions import the Google Cloud AI
# Platform SDK, 13 of the 36 s a cached rerun spent importing (benchmarks/README.md).

# User code is referenced by import path: the project is installed wherever executors
# run (see README, "Why functions by module path").
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
TUNER_FN = "models.tuner.tuner_fn"
RUN_FN = "models.trainer.run_fn"
# The code behind each cached result, hashed into its component's properties: TFX's cache key
# holds the class or function path only, so without these an edit would reuse stale results.
MODEL_CODE = ("models/*.py",)
EXAMPLE_GEN_CODE = (
    "pipeline/components/example_gen.py",
    "pipeline/components/example_records.py",
    "data/checks.py",
    "models/features.py",
)
GATE_CODE = ("pipeline/components/gates.py", "lineage/artifacts.py")
EVALUATOR_CODE = (
    "pipeline/components/evaluator.py",
    "lineage/fairness.py",
    "lineage/artifacts.py",
    "pipeline/names.py",
)
# Runtime parameters of the Kubeflow flavour: set per run when submitting the spec.
DATA_DIR_PARAMETER = "data-dir"
TRAIN_ARGS_PARAMETER = "train-args"
SLICE_KEYS = names.SLICE_KEYS
# Metrics beyond this many significant digits are noise and would make change
# thresholds flaky.
AUC_EPSILON = 1e-10


def code_fingerprint(patterns: tuple[str, ...] = MODEL_CODE, root: Path = PROJECT_ROOT) -> str:
    """A hash of the files these glob patterns match under root, names and contents."""
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


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
        slicing_specs=overall + [tfma.SlicingSpec(feature_keys=[key]) for key in SLICE_KEYS],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )


def fairness_gate(config: PipelineConfig) -> fairness.GateSettings:
    return fairness.GateSettings(
        groups=fairness.parse_groups(config.fairness_gate),
        max_auc_gap=config.fairness_max_auc_gap,
        max_fnr_gap=config.fairness_max_fnr_gap,
        min_examples=config.min_slice_examples,
    )


def look_back(
    node_id: str, strategy, candidate=None, config: dict | None = None, **channels
) -> Resolver:
    """A resolver for earlier artifacts; the candidate (this run's own) is left out locally.

    On KFP there is no candidate: its compiler accepts only TFX's plain strategies.
    """
    if candidate is not None:
        channels[CANDIDATE_KEY] = candidate
    return Resolver(strategy_class=strategy, config=config or {}, **channels).with_id(node_id)


def runtime_parameter_values(config: PipelineConfig) -> dict[str, str]:
    """The Kubeflow flavour's runtime parameters, valued from config (JSON for train-args)."""
    train_args = trainer_pb2.TrainArgs(num_steps=config.train_steps)
    return {
        DATA_DIR_PARAMETER: str(config.data_dir),
        TRAIN_ARGS_PARAMETER: json.dumps(json_format.MessageToDict(train_args)),
    }


# How create_pipeline adapts the graph to TFX's KFP v2 compiler (runners/kubeflow_runner.py).
KUBEFLOW_OPTIONS = {
    "runtime_parameters": True,
    "exclude_candidate_from_baseline": False,
    "check_drift": False,
}


def create_pipeline(
    config: PipelineConfig,
    *,
    runtime_parameters: bool = False,
    exclude_candidate_from_baseline: bool = True,
    check_drift: bool = True,
    schema_file_in_image: str | None = None,
    tune: bool | None = None,
) -> Pipeline:
    """ExampleGen, statistics, the inferred and the curated schema, validation and its gate,
    Transform, Tuner (or the latest tuned hyperparameters), Trainer, Evaluator (with
    fairness) against the previous blessed model, Pusher.

    Args:
      config: every setting of the run (paths, training budget, thresholds, Beam, MLMD).
      runtime_parameters: make the data folder and the training arguments KFP runtime
        parameters, set when a run is submitted (valued from config by default).
      exclude_candidate_from_baseline: the Evaluator's baseline is the latest blessed model
        other than this run's own, so an unchanged rerun stays fully cached. False gives
        TFX's plain LatestBlessedModelStrategy, the only one KFP's compiler accepts.
      check_drift: the data gate also compares statistics with the previous run's. KFP's
        resolvers query by type only and would also match Transform's statistics, so there
        the gate checks the schema only (see README, "Kubeflow Pipelines and Vertex AI").
      schema_file_in_image: where tasks read the curated schema when it is not
        config.schema_file (the container image's copy on KFP). Either way the content of
        config.schema_file is part of the cache key.

    KUBEFLOW_OPTIONS holds the values for KFP.
    """
    if problems := checks.setting_problems(config):  # a config built in code (the notebook)
        raise ValueError("; ".join(problems))
    fingerprint = {"code_fingerprint": code_fingerprint(), "seed": config.seed}
    data_dir: str | RuntimeParameter = str(config.data_dir)
    train_args: trainer_pb2.TrainArgs | RuntimeParameter = trainer_pb2.TrainArgs(
        num_steps=config.train_steps
    )
    if runtime_parameters:
        defaults = runtime_parameter_values(config)
        data_dir, train_args = (
            RuntimeParameter(name=name, ptype=str, default=defaults[name])
            for name in (DATA_DIR_PARAMETER, TRAIN_ARGS_PARAMETER)
        )

    example_gen_component = FileBasedExampleGen(
        input_base=data_dir,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="all", pattern=config.input_pattern)]
        ),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
                    example_gen_pb2.SplitConfig.Split(
                        name="eval", hash_buckets=config.eval_split_buckets
                    ),
                ]
            )
        ),
        range_config=range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(
                start_span_number=config.span, end_span_number=config.span
            )
        )
        if config.span
        else None,
        custom_executor_spec=executor_spec.BeamExecutorSpec(example_gen.Executor),
        custom_config={"code_fingerprint": code_fingerprint(EXAMPLE_GEN_CODE)},
    ).with_id(names.EXAMPLE_GEN)
    examples = example_gen_component.outputs["examples"]

    statistics_gen = components.StatisticsGen(examples=examples).with_id(names.STATISTICS_GEN)
    statistics = statistics_gen.outputs["statistics"]
    # The schema this run's data would get, kept beside the curated one (which data is
    # validated against): their difference is reported with the run (lineage/schema_diff.py).
    schema_gen = components.SchemaGen(statistics=statistics, infer_feature_shape=True).with_id(
        names.SCHEMA_GEN
    )
    schema_importer = CuratedSchemaImporter(
        schema_file_in_image or config.schema_file, content_file=config.schema_file
    ).with_id(names.SCHEMA_IMPORTER)
    schema = schema_importer.outputs[names.CURATED_SCHEMA_KEY]
    example_validator = components.ExampleValidator(statistics=statistics, schema=schema).with_id(
        names.EXAMPLE_VALIDATOR
    )
    # Drift is checked against StatisticsGen's output of the previous run.
    previous_statistics = None
    if check_drift:
        previous_statistics = look_back(
            names.PREVIOUS_STATISTICS_RESOLVER,
            PreviousArtifactStrategy,
            candidate=statistics,
            config={"producer_node": statistics_gen.id},  # not Transform's statistics
            statistics=Channel(type=standard_artifacts.ExampleStatistics),
        )
    data_gate = DataValidationGate(
        anomalies=example_validator.outputs["anomalies"],
        statistics=statistics,
        schema=schema,
        previous_statistics=previous_statistics and previous_statistics.outputs["statistics"],
        code_fingerprint=code_fingerprint(GATE_CODE),
    ).with_id(names.DATA_GATE)
    transform = components.Transform(
        examples=examples,
        schema=schema,
        preprocessing_fn=PREPROCESSING_FN,
        # Its pre- and post-transform statistics were a third of its time and nothing read
        # them: StatisticsGen's are the ones validated and compared (benchmarks/README.md).
        disable_statistics=True,
        custom_config=fingerprint,
    ).with_id(names.TRANSFORM)
    transform.add_upstream_node(data_gate)  # nothing is transformed or trained from bad data
    transformed = transform.outputs["transformed_examples"]
    transform_graph = transform.outputs["transform_graph"]

    if hyperparameters.should_tune(config) if tune is None else tune:
        tuning = components.Tuner(
            examples=transformed,
            transform_graph=transform_graph,
            tuner_fn=TUNER_FN,
            train_args=trainer_pb2.TrainArgs(num_steps=config.tuner_train_steps),
            eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
            custom_config={**fingerprint, "max_trials": config.tuner_trials},
        ).with_id(names.TUNER)
        best_hyperparameters = tuning.outputs["best_hyperparameters"]
    else:
        tuning = look_back(
            names.HYPERPARAMETERS_RESOLVER,
            LatestArtifactStrategy,
            hyperparameters=Channel(type=standard_artifacts.HyperParameters),
        )
        best_hyperparameters = tuning.outputs["hyperparameters"]
    trainer = components.Trainer(
        examples=transformed,
        transform_graph=transform_graph,
        hyperparameters=best_hyperparameters,
        run_fn=RUN_FN,
        custom_executor_spec=executor_spec.ExecutorClassSpec(provenance.TrainerExecutor),
        train_args=train_args,
        eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
        custom_config=fingerprint,
    ).with_id(names.TRAINER)
    baseline_model = look_back(
        names.BASELINE_RESOLVER,
        PreviousBlessedModelStrategy
        if exclude_candidate_from_baseline
        else LatestBlessedModelStrategy,
        candidate=trainer.outputs["model"] if exclude_candidate_from_baseline else None,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    )
    evaluator = FairEvaluator(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=baseline_model.outputs["model"],
        eval_config=eval_config(config),
        fairness_gate=fairness_gate(config),
        code_fingerprint=code_fingerprint(EVALUATOR_CODE),
    ).with_id(names.EVALUATOR)
    pusher = components.Pusher(
        custom_executor_spec=executor_spec.ExecutorClassSpec(AtomicPusherExecutor),
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=str(config.serving_model_dir)
            )
        ),
    ).with_id(names.PUSHER)
    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=str(config.pipeline_root),
        components=[
            example_gen_component,
            statistics_gen,
            schema_gen,
            schema_importer,
            example_validator,
            *([previous_statistics] if previous_statistics else []),
            data_gate,
            transform,
            tuning,
            trainer,
            baseline_model,
            evaluator,
            pusher,
        ],
        enable_cache=True,
        metadata_connection_config=config.metadata_connection_config(),
        beam_pipeline_args=config.beam_pipeline_args,
    )
