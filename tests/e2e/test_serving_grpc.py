"""TF Serving's gRPC API, called with a client built on tensorflow_serving.apis, unchanged."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from conftest import bundled_rows
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from test_serving_rest import EXPORT_NAMED_REFUSAL, export_named

from models import features
from pipeline.components.example_gen import row_to_example


@pytest.fixture(scope="module")
def channel(shared_server):
    with grpc.insecure_channel(f"127.0.0.1:{shared_server.grpc_port}") as opened:
        yield opened


def serialized(row: dict) -> bytes:
    example = row_to_example(row)
    if features.LABEL_KEY in example.features.feature:
        del example.features.feature[features.LABEL_KEY]
    return example.SerializeToString()


def predict_request(records: list[bytes], name: str = "cfpb") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(records, dtype=tf.string))
    return request


def test_predict(channel, raw_rows, serving_signature, shared_server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    records = [serialized(row) for row in raw_rows[:5]]
    response, call = stub.Predict.with_call(predict_request(records), timeout=10)
    probabilities = tf.make_ndarray(response.outputs[features.PREDICTION_KEY])
    expected = serving_signature(examples=tf.constant(records))[features.PREDICTION_KEY].numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5)
    assert response.model_spec.name == "cfpb" and response.model_spec.version.value == 1
    trailing = dict(call.trailing_metadata())
    assert trailing["x-model-version"] == "1"
    logged = shared_server.request_log
    import sqlite3

    with sqlite3.connect(logged) as connection:
        (protocol,) = connection.execute(
            "SELECT protocol FROM predictions WHERE request_id = ?", (trailing["x-request-id"],)
        ).fetchone()
    assert protocol == "grpc"


def test_metadata_and_status(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "cfpb"
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    serving_default = signatures.signature_def["serving_default"]
    assert list(serving_default.inputs) == ["examples"]
    assert sorted(serving_default.outputs) == [features.PREDICTION_KEY, features.DECISION_KEY]

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "cfpb"
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        status_request, timeout=10
    )
    (version,) = status.model_version_status
    assert version.version == 1
    assert version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_errors_have_tf_servings_status_codes(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    unknown_only = tf.train.Example()
    unknown_only.features.feature["Product"].bytes_list.value.append(b"Mortgage")
    cases = [
        (predict_request([serialized({"product": "x"})], name="nope"), grpc.StatusCode.NOT_FOUND),
        (predict_request([unknown_only.SerializeToString()]), grpc.StatusCode.INVALID_ARGUMENT),
        (predict_request([b"\xff\x00garbage"]), grpc.StatusCode.INVALID_ARGUMENT),
        (predict_request([]), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for request, code in cases:
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(request, timeout=10)
        assert raised.value.code() == code, raised.value.details()
        assert "Traceback" not in raised.value.details()
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(predict_request([b"x" * 3_000_000]), timeout=10)  # over --max_request_bytes
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "cfpb"
    classify.input.example_list.examples.add().features.feature["product"].bytes_list.value.append(
        b"Mortgage"
    )
    with pytest.raises(grpc.RpcError) as raised:
        stub.Classify(classify, timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "not tensorflow/serving/classify" in raised.value.details()


def test_export_column_names_beside_a_complaint_id_are_refused(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    example = tf.train.Example()
    for name, value in export_named(bundled_rows()[0]).items():
        example.features.feature[name].bytes_list.value.append(value.encode())
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(predict_request([example.SerializeToString()]), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == EXPORT_NAMED_REFUSAL


def tensor(shape: list[int] | None, records: list[bytes]) -> tensor_pb2.TensorProto:
    """A DT_STRING TensorProto as a hand-built client might send it (shape None: no shape)."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=records)
    if shape is not None:
        proto.tensor_shape.SetInParent()
        proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape)
    return proto


EXPECTED = "expected a 1-D batch whose dimension equals the number of serialized examples"


def test_an_examples_tensor_that_is_not_a_1d_batch_of_its_values_is_refused(channel, raw_rows):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    one, two = serialized(raw_rows[0]), serialized(raw_rows[1])
    cases = {
        "shape [5], one value": (
            tf.make_tensor_proto([one], shape=[5]),
            f"input 'examples' has shape [5] but 1 serialized example(s); {EXPECTED} ([1])",
        ),
        "shape [1], two values": (
            tensor([1], [one, two]),
            f"input 'examples' has shape [1] but 2 serialized example(s); {EXPECTED} ([2])",
        ),
        "2-D": (
            tf.make_tensor_proto([[one], [two]]),
            f"input 'examples' has shape [2, 1] but 2 serialized example(s); {EXPECTED} ([2])",
        ),
        "a scalar": (
            tf.make_tensor_proto(one),
            f"input 'examples' has shape [] but 1 serialized example(s); {EXPECTED} ([1])",
        ),
        "no tensor_shape": (
            tensor(None, [one]),
            "input 'examples' has no tensor_shape, which TensorFlow reads as a scalar; "
            f"{EXPECTED} ([1])",
        ),
    }
    for what, (proto, message) in cases.items():
        request = predict_request([])
        request.inputs["examples"].CopyFrom(proto)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(request, timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert raised.value.details() == message, what
    # A hand-built tensor whose shape matches its values is served.
    request = predict_request([])
    request.inputs["examples"].CopyFrom(tensor([2], [one, two]))
    response = stub.Predict(request, timeout=10)
    assert tf.make_ndarray(response.outputs[features.PREDICTION_KEY]).shape == (2,)
