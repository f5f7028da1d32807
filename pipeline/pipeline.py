"""The one pipeline definition every runner and the notebook use."""

from __future__ import annotations

import json

from google.protobuf import json_format
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
from tfx.proto import example_gen_pb2, pusher_pb2, range_config_pb2, trainer_pb2, transform_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from pipeline import hyperparameters, names, preflight
from pipeline.components import example_gen, provenance
from pipeline.components.baseline import (
    CANDIDATE_KEY,
    PreviousArtifactStrategy,
    PreviousBlessedModelStrategy,
)
from pipeline.components.evaluator import BootstrapEvaluator, evaluation_settings
from pipeline.components.gates import DataValidationGate
from pipeline.components.push import AtomicPusherExecutor
from pipeline.components.schema_importer import CuratedSchemaImporter
from pipeline.config import PipelineConfig

# tfx.v1 is not imported on the runner path: its extensions import the Google Cloud AI
# Platform SDK, 13 of the 36 s a cached rerun spent importing (benchmarks/README.md).

# User code is referenced by import path: the project is installed wherever executors
# run (see docs/pipeline.md, "Why functions by module path").
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
TUNER_FN = "models.tuner.tuner_fn"
RUN_FN = "models.trainer.run_fn"
# Runtime parameters of the Kubeflow flavour: set per run when submitting the spec.
DATA_DIR_PARAMETER = "data-dir"
TRAIN_ARGS_PARAMETER = "train-args"


def look_back(
    node_id: str, strategy, candidate=None, config: dict | None = None, **channels
) -> Resolver:
    """A resolver for earlier artifacts; the candidate (this run's own) is left out locally.

    On KFP there is no candidate: its compiler accepts only TFX's plain strategies.
    """
    if candidate is not None:
        channels[CANDIDATE_KEY] = candidate
    return Resolver(strategy_class=strategy, config=config or {}, **channels).with_id(node_id)


# Validation once through, whole: no num_steps (Tuner and Trainer read it to the end).
VALIDATION_ARGS = trainer_pb2.EvalArgs(splits=[names.VALIDATION])


def trainer_args(config: PipelineConfig) -> trainer_pb2.TrainArgs:
    return trainer_pb2.TrainArgs(splits=[names.TRAIN], num_steps=config.train_steps)


def runtime_parameter_values(config: PipelineConfig) -> dict[str, str]:
    """The Kubeflow flavour's runtime parameters, valued from config (JSON for train-args)."""
    return {
        DATA_DIR_PARAMETER: str(config.data_dir),
        TRAIN_ARGS_PARAMETER: json.dumps(json_format.MessageToDict(trainer_args(config))),
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
        the gate checks the schema only (see docs/kubeflow.md).
      schema_file_in_image: where tasks read the curated schema when it is not
        config.schema_file (the container image's copy on KFP). Either way the content of
        config.schema_file is part of the cache key.

    KUBEFLOW_OPTIONS holds the values for KFP.
    """
    if problems := preflight.setting_problems(config):  # a config built in code (the notebook)
        raise ValueError("; ".join(problems))
    fingerprint = {"code_fingerprint": provenance.code_fingerprint(), "seed": config.seed}
    data_dir: str | RuntimeParameter = str(config.data_dir)
    train_args: trainer_pb2.TrainArgs | RuntimeParameter = trainer_args(config)
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
                    example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
                    for name, buckets in config.split_buckets
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
        custom_config={
            "code_fingerprint": provenance.code_fingerprint(provenance.EXAMPLE_GEN_CODE)
        },
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
        code_fingerprint=provenance.code_fingerprint(provenance.GATE_CODE),
    ).with_id(names.DATA_GATE)
    transform = components.Transform(
        examples=examples,
        schema=schema,
        preprocessing_fn=PREPROCESSING_FN,
        # Its pre- and post-transform statistics were a third of its time and nothing read
        # them: StatisticsGen's are the ones validated and compared (benchmarks/README.md).
        disable_statistics=True,
        # Vocabularies and statistics from train only: validation and test stay unseen.
        splits_config=transform_pb2.SplitsConfig(analyze=[names.TRAIN], transform=names.SPLITS),
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
            train_args=trainer_pb2.TrainArgs(
                splits=[names.TRAIN], num_steps=config.tuner_train_steps
            ),
            eval_args=VALIDATION_ARGS,
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
        eval_args=VALIDATION_ARGS,
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
    evaluator = BootstrapEvaluator(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=baseline_model.outputs["model"],
        settings=evaluation_settings(config),
        code_fingerprint=provenance.code_fingerprint(provenance.EVALUATOR_CODE),
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
