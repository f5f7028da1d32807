"""The Open Inference Protocol on the real server: tritonclient's HTTP and gRPC clients get the
answers TF Serving's API gives for the same bundled rows, and the protocol's errors."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from conftest import bundled_rows
from tensorflow.core.example import example_pb2
from tritonclient.utils import InferenceServerException

from models import features

COLUMNS = features.RAW_FEATURE_KEYS


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [{key: row[key] for key in COLUMNS} for row in bundled_rows(every=997)[:6]]


@pytest.fixture(scope="module")
def v1_answers(shared_server, rows) -> dict[str, np.ndarray]:
    answer = requests.post(f"{shared_server.url}:predict", json={"instances": rows}, timeout=30)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    return {
        "dispute_probability": np.array(
            [p["dispute_probability"] for p in predictions], np.float32
        ),
        "disputed": np.array([p["disputed"] for p in predictions], np.int64),
    }


def column_inputs(module, rows: list[dict]) -> list:
    inputs = []
    for key in COLUMNS:
        tensor = module.InferInput(key, [len(rows)], "BYTES")
        tensor.set_data_from_numpy(np.array([r[key].encode() for r in rows], dtype=object))
        inputs.append(tensor)
    return inputs


def serialized(rows: list[dict]) -> np.ndarray:
    found = []
    for row in rows:
        example = example_pb2.Example()
        for key in COLUMNS:
            example.features.feature[key].bytes_list.value.append(row[key].encode())
        found.append(example.SerializeToString())
    return np.array(found, dtype=object)


def assert_same(result, expected: dict[str, np.ndarray]) -> None:
    for name, values in expected.items():
        np.testing.assert_array_equal(result.as_numpy(name), values)


def test_tritonclient_http_gets_v1s_answers(shared_server, rows, v1_answers):
    client = triton_http.InferenceServerClient(f"127.0.0.1:{shared_server.rest_port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("cfpb") and not client.is_model_ready("cfpb", "9")
    metadata = client.get_model_metadata("cfpb")
    assert (metadata["versions"], metadata["inputs"][0]["name"]) == (["1"], "examples")
    assert [o["name"] for o in metadata["outputs"]] == ["dispute_probability", "disputed"]
    by_column = client.infer("cfpb", column_inputs(triton_http, rows), request_id="oip-http-1")
    assert_same(by_column, v1_answers)
    examples = triton_http.InferInput("examples", [len(rows)], "BYTES")
    examples.set_data_from_numpy(serialized(rows))  # binary tensor extension, the default
    wanted = [triton_http.InferRequestedOutput("dispute_probability", binary_data=False)]
    one = client.infer("cfpb", [examples], model_version="1", outputs=wanted)
    np.testing.assert_array_equal(
        one.as_numpy("dispute_probability"), v1_answers["dispute_probability"]
    )
    assert one.as_numpy("disputed") is None
    rows_logged = logged(shared_server, "oip-http-1")
    assert rows_logged == [("oip-rest", i, "default") for i in range(len(rows))]


def test_tritonclient_grpc_on_the_tf_serving_port_gets_v1s_answers(shared_server, rows, v1_answers):
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{shared_server.grpc_port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("cfpb")
    assert client.get_server_metadata().extensions == ["binary_tensor_data"]
    by_column = client.infer("cfpb", column_inputs(triton_grpc, rows), request_id="oip-grpc-1")
    assert_same(by_column, v1_answers)
    examples = triton_grpc.InferInput("examples", [len(rows)], "BYTES")
    examples.set_data_from_numpy(serialized(rows))
    assert_same(client.infer("cfpb", [examples], model_version="1"), v1_answers)
    assert logged(shared_server, "oip-grpc-1") == [
        ("oip-grpc", i, "default") for i in range(len(rows))
    ]


def logged(server, request_id: str) -> list[tuple]:
    with sqlite3.connect(server.request_log) as connection:
        return connection.execute(
            "SELECT protocol, instance, assignment FROM predictions WHERE request_id = ? "
            "ORDER BY instance",
            (request_id,),
        ).fetchall()


def test_wrong_datatypes_shapes_and_names_get_the_protocols_errors(shared_server, rows):
    http = triton_http.InferenceServerClient(f"127.0.0.1:{shared_server.rest_port}")
    grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{shared_server.grpc_port}")
    for module, client, codes in [
        (triton_http, http, ("400", "404")),
        (triton_grpc, grpc_client, ("StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND")),
    ]:
        numbers = module.InferInput("product", [2], "FP32")
        numbers.set_data_from_numpy(np.array([1.0, 2.0], np.float32))
        misspelled = module.InferInput("prodcut", [1], "BYTES")
        misspelled.set_data_from_numpy(np.array([b"Mortgage"], dtype=object))
        cases = [
            (
                "cfpb",
                [numbers],
                codes[0],
                "input 'product' has datatype FP32; this model takes BYTES",
            ),
            ("cfpb", [misspelled], codes[0], "unknown input(s) 'prodcut'; this model takes"),
            ("loans", column_inputs(module, rows[:1]), codes[1], "Servable not found"),
        ]
        for model, inputs, code, message in cases:
            with pytest.raises(InferenceServerException) as raised:
                client.infer(model, inputs)
            assert raised.value.status() == code, raised.value
            assert message in raised.value.message() and "Traceback" not in str(raised.value)
    # A shape that does not match its data, as the spec's JSON writes it (clients check shapes).
    body = {"inputs": [{"name": "product", "shape": [3], "datatype": "BYTES", "data": ["a"]}]}
    answer = requests.post(
        f"http://127.0.0.1:{shared_server.rest_port}/v2/models/cfpb/infer", json=body, timeout=30
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "input 'product' has shape [3] but 1 element(s) of data"},
    )
