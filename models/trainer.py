"""run_fn: train with the Tuner's best hyperparameters and export the serving model."""

from __future__ import annotations

import json
import math
import os

import keras_tuner as kt
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from models import datasets, features, model

# Training is split into up to this many epochs so that the learning curves have points.
EPOCHS = 10
HISTORY_FILE = "history.json"
# Written next to the SavedModel (and pushed with it): the decision threshold and its rule.
THRESHOLD_FILE = "decision_threshold.json"
THRESHOLD_RULE = "dispute rate: flag as many validation examples as are disputed"
DEFAULT_THRESHOLD = 0.5


def epoch_plan(train_steps: int) -> tuple[int, int]:
    """(epochs, steps per epoch) covering exactly train_steps; the last epoch may be shorter.

    Keras needs one steps_per_epoch for every epoch, so StopAfterSteps ends the last one early:
    25 steps are 8 epochs of 3 and one of 1, not 10 epochs of 2 (20 steps).
    """
    steps_per_epoch = math.ceil(train_steps / EPOCHS)
    return math.ceil(train_steps / steps_per_epoch), steps_per_epoch


class StopAfterSteps(tf.keras.callbacks.Callback):
    """Stops training once this many batches have been trained, mid-epoch if need be."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps, self.trained = steps, 0

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.trained += 1
        if self.trained >= self.steps:
            self.model.stop_training = True


def serving_feature_spec(tf_transform_output: tft.TFTransformOutput) -> dict:
    """The raw feature spec without the label, with '' for any feature a request omits."""
    spec = tf_transform_output.raw_feature_spec()
    spec.pop(features.LABEL_KEY, None)
    for key, feature_spec in spec.items():
        if isinstance(feature_spec, tf.io.FixedLenFeature):
            size = int(np.prod(feature_spec.shape))
            default = "" if not feature_spec.shape else [""] * size
            spec[key] = tf.io.FixedLenFeature(feature_spec.shape, feature_spec.dtype, default)
    return spec


def dispute_rate_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The score above which as many examples are flagged as are disputed.

    The rule (docs/pipeline.md, "Decision threshold"): precision and recall then describe a
    model that flags disputes at the rate they happen. Maximising F1 instead tends, for a weak
    model, to flag everything. 0.5 when the data has one class only.
    """
    rate = float(np.mean(labels)) if len(labels) else 0.0
    if rate <= 0.0 or rate >= 1.0:
        return DEFAULT_THRESHOLD
    return float(np.quantile(probabilities, 1.0 - rate))


def choose_threshold(keras_model: tf.keras.Model, dataset: tf.data.Dataset) -> dict:
    """The decision threshold on the validation data (each example once: the dataset is not
    repeated), with how it was chosen and how many examples it saw."""
    scores, labels = [], []
    for batch, label in dataset:
        scores.append(keras_model.predict_on_batch(batch).reshape(-1))
        labels.append(label.numpy().reshape(-1))
    probabilities, truth = np.concatenate(scores), np.concatenate(labels)
    return {
        "threshold": round(dispute_rate_threshold(probabilities, truth), 6),
        "rule": THRESHOLD_RULE,
        "validation_examples": int(len(truth)),
        "validation_dispute_rate": round(float(np.mean(truth)), 6),
    }


def make_serving_signatures(
    keras_model: tf.keras.Model,
    tf_transform_output: tft.TFTransformOutput,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """serving_default: serialized tf.Examples of raw columns -> probability and decision; and
    features.PROBABILITY_SIGNATURE with the probability alone, for a TF Serving client that
    reads one output per example ({"predictions": [0.24, ...]})."""
    # Tracked as attributes so that the transform graph and the threshold are saved with it.
    keras_model.tft_layer = tf_transform_output.transform_features_layer()
    keras_model.decision_threshold = tf.Variable(
        threshold, dtype=tf.float32, trainable=False, name="decision_threshold"
    )
    raw_spec = serving_feature_spec(tf_transform_output)
    input_names = list(keras_model.input.keys())

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(serialized_examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(serialized_examples, raw_spec)
        transformed = keras_model.tft_layer(raw)
        probability = tf.reshape(keras_model({n: transformed[n] for n in input_names}), [-1])
        decision = tf.cast(probability > keras_model.decision_threshold, tf.int64)
        return {features.PREDICTION_KEY: probability, features.DECISION_KEY: decision}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_probability(serialized_examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return {features.PREDICTION_KEY: serve(serialized_examples)[features.PREDICTION_KEY]}

    return {
        "serving_default": serve.get_concrete_function(),
        features.PROBABILITY_SIGNATURE: serve_probability.get_concrete_function(),
    }


def load_hyperparameters(config: dict | None) -> kt.HyperParameters:
    """The Tuner's best hyperparameters, or the search space's defaults without them."""
    if config:
        return kt.HyperParameters.from_config(config)
    return model.hyperparameter_space()


def run_fn(fn_args: FnArgs) -> None:
    """Train, record the learning curves, and save the model with its serving signature."""
    model.make_reproducible(int(fn_args.custom_config["seed"]))  # set by create_pipeline
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    hp = load_hyperparameters(fn_args.hyperparameters)

    train = datasets.make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output)
    # The validation split, each example once: Keras's validation and the decision threshold.
    validation = datasets.make_dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, once=True
    )
    keras_model = model.build_model(hp, model.vocabulary_sizes(tf_transform_output))
    epochs, steps_per_epoch = epoch_plan(fn_args.train_steps)
    stop = StopAfterSteps(fn_args.train_steps)
    history = keras_model.fit(
        train,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation,
        callbacks=[stop, tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
        verbose=2,
    )
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as handle:
        record = {"hyperparameters": hp.values, "trained_steps": stop.trained}
        json.dump({**record, "history": history.history}, handle, indent=2)

    decision = choose_threshold(keras_model, validation)
    signatures = make_serving_signatures(keras_model, tf_transform_output, decision["threshold"])
    keras_model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)
    with open(os.path.join(fn_args.serving_model_dir, THRESHOLD_FILE), "w") as handle:
        json.dump(decision, handle, indent=2)


def saved_threshold(model_dir: str) -> dict | None:
    """The decision record saved next to a SavedModel, or None for a model without one."""
    from tfx.dsl.io import fileio

    path = os.path.join(model_dir, THRESHOLD_FILE)
    if not fileio.exists(path):
        return None
    with fileio.open(path, "r") as handle:
        return json.load(handle)
