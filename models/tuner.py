"""tuner_fn: random search over models.model.hyperparameter_space."""

from __future__ import annotations

import keras_tuner as kt
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult

from models import datasets, model


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    """RandomSearch maximising validation AUC.

    custom_config carries the budget (max_trials) and the seed; create_pipeline sets both from
    PipelineConfig, the one place their defaults live.
    """
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    sizes = model.vocabulary_sizes(tf_transform_output)
    custom_config = fn_args.custom_config
    model.make_reproducible(int(custom_config["seed"]))
    tuner = kt.RandomSearch(
        lambda hp: model.build_model(hp, sizes),
        hyperparameters=model.hyperparameter_space(),
        objective=kt.Objective("val_auc", direction="max"),
        max_trials=int(custom_config["max_trials"]),
        seed=int(custom_config["seed"]),
        directory=fn_args.working_dir,
        project_name="cfpb_dispute",
    )
    train = datasets.make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output)
    # The validation split, each example once per trial epoch: the score trials are ranked by.
    validation = datasets.make_dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, once=True
    )
    return TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": train,
            "validation_data": validation,
            "steps_per_epoch": fn_args.train_steps,
        },
    )
