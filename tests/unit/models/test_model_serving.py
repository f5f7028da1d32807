"""The Keras model and the exported serving signature on raw serialized tf.Examples."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models import features, model, trainer
from pipeline.components.example_gen import row_to_example


def _dataset(instances: list[dict]) -> tf.data.Dataset:
    columns = {key: np.stack([i[key] for i in instances]) for key in instances[0]}
    labels = columns.pop(features.LABEL_KEY)
    return tf.data.Dataset.from_tensor_slices((columns, labels)).batch(16).repeat()


@pytest.fixture(scope="module")
def trained(transformed):
    tf_transform_output, instances = transformed
    tf.keras.utils.set_random_seed(0)
    keras_model = model.build_model(
        model.hyperparameter_space(), model.vocabulary_sizes(tf_transform_output)
    )
    keras_model.fit(_dataset(instances), steps_per_epoch=5, epochs=1, verbose=0)
    return keras_model, tf_transform_output, instances


@pytest.fixture(scope="module")
def signatures(trained, tmp_path_factory):
    keras_model, tf_transform_output, _ = trained
    export_dir = str(tmp_path_factory.mktemp("model"))
    made = trainer.make_serving_signatures(keras_model, tf_transform_output)
    keras_model.save(export_dir, save_format="tf", signatures=made)
    return tf.saved_model.load(export_dir).signatures


@pytest.fixture(scope="module")
def serving(signatures):
    return signatures["serving_default"]


def test_model_predicts_a_probability_per_example(trained):
    keras_model, _, instances = trained
    batch = {key: np.stack([i[key] for i in instances[:8]]) for key in keras_model.input}
    probabilities = keras_model.predict(batch, verbose=0)
    assert probabilities.shape == (8, 1)
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_every_hyperparameter_has_a_default():
    hp = model.hyperparameter_space()
    assert set(hp.values) == {
        "learning_rate",
        "hidden_units",
        "text_embedding_dim",
        "category_embedding_dim",
        "dropout",
    }
    assert trainer.load_hyperparameters(None).values == hp.values
    assert trainer.load_hyperparameters(hp.get_config()).values == hp.values


def test_autograph_leaves_keras_code_as_written():
    from tensorflow.python.autograph.impl import conversion

    train_step = tf.keras.Model.train_step
    assert train_step.__module__.startswith("tf_keras.")
    assert conversion.is_allowlisted(train_step)
    model.keep_autograph_out_of_keras()  # a second call adds no second rule
    from tensorflow.python.autograph.core import config

    assert sum(rule.matches("tf_keras") for rule in config.CONVERSION_RULES) == 1


def test_signature_takes_serialized_examples_and_returns_probabilities(signatures, raw_rows):
    default = signatures["serving_default"]
    (input_spec,) = default.structured_input_signature[1].values()
    assert input_spec.dtype == tf.string and input_spec.shape.as_list() == [None]
    assert sorted(default.structured_outputs) == [features.PREDICTION_KEY, features.DECISION_KEY]
    # The one-output signature answers the same probabilities, alone.
    records = tf.constant([row_to_example(row).SerializeToString() for row in raw_rows[:5]])
    alone = signatures[features.PROBABILITY_SIGNATURE](examples=records)
    assert list(alone) == [features.PREDICTION_KEY]
    np.testing.assert_array_equal(
        alone[features.PREDICTION_KEY], default(examples=records)[features.PREDICTION_KEY]
    )


def test_dispute_rate_threshold_flags_as_many_as_are_disputed():
    probabilities = np.linspace(0.0, 0.99, 100)
    labels = np.array([1] * 20 + [0] * 80)
    threshold = trainer.dispute_rate_threshold(probabilities, labels)
    assert (probabilities > threshold).sum() == 20
    assert trainer.dispute_rate_threshold(probabilities, np.zeros(100)) == 0.5


def test_the_threshold_is_saved_and_decides(trained, tmp_path, raw_rows):
    keras_model, tf_transform_output, _ = trained
    rows = raw_rows[:20]
    examples = [row_to_example(row) for row in rows]
    records = tf.constant([e.SerializeToString() for e in examples])
    signatures = trainer.make_serving_signatures(keras_model, tf_transform_output)
    probabilities = signatures["serving_default"](records)[features.PREDICTION_KEY].numpy()
    threshold = float(np.median(probabilities))
    signatures = trainer.make_serving_signatures(keras_model, tf_transform_output, threshold)
    keras_model.save(str(tmp_path), save_format="tf", signatures=signatures)
    loaded = tf.saved_model.load(str(tmp_path))
    assert loaded.decision_threshold.numpy() == pytest.approx(threshold)
    served = loaded.signatures["serving_default"](examples=records)
    expected = (served[features.PREDICTION_KEY].numpy() > np.float32(threshold)).astype(int)
    assert served[features.DECISION_KEY].numpy().tolist() == expected.tolist()
    assert 0 < expected.sum() < len(rows)  # the threshold splits the batch


def test_serving_matches_training_transform(serving, trained, raw_rows):
    keras_model, _, instances = trained
    rows = raw_rows[:10]
    examples = [row_to_example(row) for row in rows]
    # The label is not part of a request.
    for example in examples:
        del example.features.feature[features.LABEL_KEY]
    served = serving(tf.constant([e.SerializeToString() for e in examples]))
    probabilities = served[features.PREDICTION_KEY].numpy()
    assert probabilities.shape == (10,)
    batch = {key: np.stack([i[key] for i in instances[:10]]) for key in keras_model.input}
    expected = keras_model.predict(batch, verbose=0)[:, 0]
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5)


def test_missing_features_are_tolerated(serving, raw_rows):
    only_product = tf.train.Example()
    only_product.features.feature["product"].bytes_list.value.append(b"Mortgage")
    unknown_values = row_to_example(
        {**raw_rows[0], "company": "A company never seen", "zip_code": "1"}
    )
    del unknown_values.features.feature[features.LABEL_KEY]
    batch = [tf.train.Example(), only_product, unknown_values]
    probabilities = serving(tf.constant([e.SerializeToString() for e in batch]))[
        features.PREDICTION_KEY
    ].numpy()
    assert probabilities.shape == (3,)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


@pytest.mark.parametrize("steps", [25, 19, 7, 300])
def test_training_runs_exactly_the_requested_steps(transformed, steps):
    """--train-steps 25 trained 20 steps and 19 trained 10 (issue 11.4)."""
    tf_transform_output, instances = transformed
    keras_model = model.build_model(
        model.hyperparameter_space(), model.vocabulary_sizes(tf_transform_output)
    )
    epochs, steps_per_epoch = trainer.epoch_plan(steps)
    stop = trainer.StopAfterSteps(steps)
    history = keras_model.fit(
        _dataset(instances),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=[stop],
        verbose=0,
    )
    assert int(keras_model.optimizer.iterations.numpy()) == stop.trained == steps
    assert len(history.history["loss"]) == epochs <= trainer.EPOCHS


def test_the_threshold_sees_each_validation_example_once(trained):
    """It used to take --eval-steps batches of a repeating dataset: rows counted twice."""
    keras_model, _, instances = trained
    columns = {key: np.stack([i[key] for i in instances]) for key in instances[0]}
    labels = columns.pop(features.LABEL_KEY)
    validation = tf.data.Dataset.from_tensor_slices((columns, labels)).batch(16)  # not repeated
    decision = trainer.choose_threshold(keras_model, validation)
    assert decision["validation_examples"] == len(instances)
    assert decision["validation_dispute_rate"] == pytest.approx(float(np.mean(labels)), abs=1e-6)
    scores = keras_model.predict(columns, verbose=0).reshape(-1)
    assert decision["threshold"] == pytest.approx(
        trainer.dispute_rate_threshold(scores, labels.reshape(-1)), abs=1e-5
    )
