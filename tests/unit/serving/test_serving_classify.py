"""Classify on a model with a classification signature, through the gRPC servicer in-process."""

from __future__ import annotations

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2

from serving.batching import Batcher
from serving.grpc_service import PredictionServicer
from serving.metrics import Metrics
from serving.service import PredictService
from serving.versions import ModelManager, ModelSettings


def save_classifier(path: str) -> None:
    """A TF1-style SavedModel whose serving_default is a classification signature."""
    with tf.compat.v1.Graph().as_default():
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        spec = {"x": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])}
        x = tf.io.parse_example(serialized, spec)["x"]
        scores = tf.concat([1 - tf.sigmoid(x), tf.sigmoid(x)], axis=1)
        classes = tf.tile(tf.constant([["no", "yes"]]), [tf.shape(serialized)[0], 1])
        signature = tf.compat.v1.saved_model.classification_signature_def(
            serialized, classes, scores
        )
        with tf.compat.v1.Session() as session:
            builder = tf.compat.v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(
                session, ["serve"], signature_def_map={"serving_default": signature}
            )
            builder.save()


class Context:
    """What a grpc servicer context does, as far as these handlers use it."""

    def invocation_metadata(self):
        return ()

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing = dict(metadata)

    def abort(self, code, details):
        raise grpc.RpcError(code, details)


@pytest.fixture
def servicer(tmp_path):
    save_classifier(str(tmp_path / "models" / "1"))
    manager = ModelManager(
        [ModelSettings("clf", str(tmp_path / "models"))],
        lambda servable: Batcher(servable.run),
        poll_seconds=0,
    )
    manager.start()
    yield PredictionServicer(PredictService(manager, None, Metrics()), token=None)
    manager.stop()


def test_classify_answers_labels_and_scores(servicer):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "clf"
    for value in (0.0, 2.0):
        example = request.input.example_list.examples.add()
        example.features.feature["x"].float_list.value.append(value)
    response = servicer.Classify(request, Context())
    assert response.model_spec.version.value == 1
    first, second = response.result.classifications
    assert [c.label for c in first.classes] == ["no", "yes"]
    assert [c.score for c in first.classes] == pytest.approx([0.5, 0.5])
    assert second.classes[1].score == pytest.approx(0.8808, abs=1e-4)


def test_the_schema_check_reads_a_tf1_graph_too(servicer):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "clf"
    request.input.example_list.examples.add().features.feature["y"].float_list.value.append(1)
    with pytest.raises(grpc.RpcError) as raised:
        servicer.Classify(request, Context())
    assert raised.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert "only unknown features: y" in raised.value.args[1]
    predict = predict_pb2.PredictRequest()
    predict.model_spec.name = "clf"
    predict.inputs["inputs"].CopyFrom(tf.make_tensor_proto([b""]))
    with pytest.raises(grpc.RpcError):  # an empty example: no known feature
        servicer.Predict(predict, Context())
