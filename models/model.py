"""The Keras model: learned embeddings for categories and narrative words, one MLP on top."""

from __future__ import annotations

import keras_tuner as kt
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.python.autograph.core import config as autograph_config

from models import features


def keep_autograph_out_of_keras() -> None:
    """Run Keras 2's own code as written when a training step is traced, as TensorFlow does
    for the `keras` package.

    TensorFlow 2.16's AutoGraph leaves `keras` alone but not `tf_keras`, so the first trace of
    every process converted Keras's internals line by line: 12 s of the Tuner's first trial on
    2 cores, for the same graph (benchmarks/README.md). Keras's code needs no conversion.
    """
    rules = autograph_config.CONVERSION_RULES
    skip = autograph_config.DoNotConvert
    if not any(isinstance(rule, skip) and rule.matches("tf_keras") for rule in rules):
        autograph_config.CONVERSION_RULES = (skip("tf_keras"), *rules)


keep_autograph_out_of_keras()


def make_reproducible(seed: int) -> None:
    """Same seed, same data, same code: the same model (at some cost in speed)."""
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def hyperparameter_space() -> kt.HyperParameters:
    """The search space; each default is also what Trainer uses without a Tuner result."""
    hp = kt.HyperParameters()
    hp.Choice("learning_rate", [3e-3, 1e-3], default=1e-3)
    hp.Choice("hidden_units", [32, 64], default=64)
    hp.Choice("text_embedding_dim", [16, 32], default=32)
    hp.Choice("category_embedding_dim", [4, 8], default=8)
    hp.Choice("dropout", [0.3, 0.5], default=0.5)
    return hp


def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput) -> dict[str, int]:
    """Embedding input sizes (OOV buckets and the narrative's padding included) of the shared
    category vocabulary and of the narrative's."""

    def size(name: str) -> int:
        vocabulary = features.vocabulary_name(name)
        return tf_transform_output.vocabulary_size_by_name(vocabulary) + features.OOV_BUCKETS

    return {
        features.CATEGORY_VOCABULARY: size(features.CATEGORY_VOCABULARY),
        features.TEXT_KEY: size(features.TEXT_KEY) + 1,
    }


def build_model(hp: kt.HyperParameters, sizes: dict[str, int]) -> tf.keras.Model:
    """Embeddings of every category and the mean embedding of the narrative's words."""
    # One table for all categories: their terms never overlap (features.CATEGORY_VOCABULARY),
    # so each feature's values have rows of their own; only the out-of-vocabulary row is shared.
    categories = tf.keras.layers.Embedding(
        sizes[features.CATEGORY_VOCABULARY],
        hp.get("category_embedding_dim"),
        name="category_embedding",
    )
    inputs, encoded = {}, []
    for key in features.CATEGORY_KEYS:
        name = features.transformed_name(key)
        inputs[name] = tf.keras.Input(shape=(), name=name, dtype=tf.int64)
        encoded.append(categories(inputs[name]))

    text_name = features.transformed_name(features.TEXT_KEY)
    inputs[text_name] = tf.keras.Input(
        shape=(features.TEXT_MAX_TOKENS,), name=text_name, dtype=tf.int64
    )
    words = tf.keras.layers.Embedding(
        sizes[features.TEXT_KEY],
        hp.get("text_embedding_dim"),
        mask_zero=True,
        name="word_embedding",
    )(inputs[text_name])
    # Every narrative has at least one token (see preprocessing), so the mean is defined.
    encoded.append(tf.keras.layers.GlobalAveragePooling1D(name="narrative")(words))

    hidden = tf.keras.layers.Concatenate()(encoded)
    hidden = tf.keras.layers.Dropout(hp.get("dropout"))(hidden)
    hidden = tf.keras.layers.Dense(hp.get("hidden_units"), activation="relu")(hidden)
    hidden = tf.keras.layers.Dropout(hp.get("dropout"))(hidden)
    probability = tf.keras.layers.Dense(1, activation="sigmoid", name=features.PREDICTION_KEY)(
        hidden
    )
    model = tf.keras.Model(inputs=inputs, outputs=probability)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(hp.get("learning_rate")),
        loss="binary_crossentropy",
        metrics=[tf.keras.metrics.AUC(name="auc"), tf.keras.metrics.BinaryAccuracy()],
    )
    return model
