"""Model server fixtures: a real SavedModel from a real tf.Transform run, and a shared server.

The model is trained for a few steps on the session's tf.Transform output (tests/conftest.py)
and saved with the pipeline's own serving signature, as Pusher would push it. Servers run as
`python -m serving` subprocesses on free loopback ports (serving_harness.py). Loaded as a
pytest plugin by tests/conftest.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from support.serving_harness import ServerProcess, push


@pytest.fixture(scope="session")
def saved_model(request, tmp_path_factory) -> Path:
    """A SavedModel with the pipeline's serving_default, trained a few steps.

    SERVING_TEST_MODEL_DIR=<a SavedModel folder> skips building it (a minute) while iterating.
    """
    if os.environ.get("SERVING_TEST_MODEL_DIR"):
        return Path(os.environ["SERVING_TEST_MODEL_DIR"])
    import tensorflow as tf

    from models import features, model, trainer

    tf_transform_output, instances = request.getfixturevalue("transformed")
    tf.keras.utils.set_random_seed(0)
    keras_model = model.build_model(
        model.hyperparameter_space(), model.vocabulary_sizes(tf_transform_output)
    )
    columns = {key: np.stack([i[key] for i in instances]) for key in instances[0]}
    labels = columns.pop(features.LABEL_KEY)
    data = tf.data.Dataset.from_tensor_slices((columns, labels)).batch(16).repeat()
    keras_model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)
    export_dir = tmp_path_factory.mktemp("saved_model") / "model"
    signatures = trainer.make_serving_signatures(keras_model, tf_transform_output)
    keras_model.save(str(export_dir), save_format="tf", signatures=signatures)
    return export_dir


@pytest.fixture(scope="session")
def serving_signature(saved_model):
    """The model's serving_default loaded in the test process, to compare answers with."""
    import tensorflow as tf

    return tf.saved_model.load(str(saved_model)).signatures["serving_default"]


@pytest.fixture(scope="session")
def shared_server(saved_model, tmp_path_factory):
    """One server (REST and gRPC) on version 1, for tests that change nothing on it."""
    workdir = tmp_path_factory.mktemp("shared_server")
    base_path = workdir / "serving_model"
    push(saved_model, base_path, 1)
    server = ServerProcess(base_path, workdir, "--max_request_bytes=2000000").start()
    yield server
    server.stop()
