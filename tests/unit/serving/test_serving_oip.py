"""The Open Inference Protocol (KServe v2) beside TF Serving's API: same routing, log and answers.

The versions are stand-ins (no TensorFlow) behind the real manager, router, batchers, service,
request log, Starlette app and gRPC servicer; requests are built with tritonclient's encoders.
"""

from __future__ import annotations

import json
import sqlite3

import grpc
import numpy as np
import pytest
import tritonclient.http as triton_http
from conftest import bundled_rows
from starlette.testclient import TestClient
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tritonclient.grpc import service_pb2

from models import features
from serving import example_wire, versions
from serving.batching import Batcher
from serving.metrics import Metrics
from serving.oip_grpc import InferenceServicer
from serving.request_log import RequestLog
from serving.rest_app import create_app
from serving.routing import Router
from serving.servable import FeatureSpec, Signature
from serving.service import PredictService

URL = "/v2/models/cfpb"
COLUMNS = features.RAW_FEATURE_KEYS


def _info(dtype) -> meta_graph_pb2.TensorInfo:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1)])
    return meta_graph_pb2.TensorInfo(dtype=dtype, tensor_shape=shape)


DEFINITION = meta_graph_pb2.SignatureDef(
    method_name="tensorflow/serving/predict",
    inputs={"examples": _info(types_pb2.DT_STRING)},
    outputs={
        "dispute_probability": _info(types_pb2.DT_FLOAT),
        "disputed": _info(types_pb2.DT_INT64),
    },
)
SIGNATURE = Signature(
    "serving_default",
    DEFINITION,
    "examples",
    ["dispute_probability", "disputed"],
    {key: FeatureSpec("bytes", 1) for key in COLUMNS},
)
CONFIG = (
    'model_config_list { config { name: "cfpb" base_path: "serving_model" '
    "model_version_policy { all {} } "
    'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } '
    'version_labels { key: "candidate" value: 3 } } }'
)


class FakeServable:
    """Answers version / 10 (+ 0.05 for a mortgage); disputed is 1 for a mortgage."""

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version = name, version

    def warm_up(self) -> int:
        return 0

    def signature(self, name: str | None) -> Signature:
        if name not in (None, SIGNATURE.name):
            raise KeyError(name)
        return SIGNATURE

    def run(self, signature: str, examples: list[bytes]) -> dict:
        mortgage = np.array(
            [example_wire.decode(e)["product"][1] == [b"Mortgage"] for e in examples]
        )
        probability = (self.version / 10 + 0.05 * mortgage).astype(np.float32)
        return {"dispute_probability": probability, "disputed": mortgage.astype(np.int64)}


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "Servable", FakeServable)
    for version in (1, 2, 3):
        (tmp_path / "serving_model" / str(version)).mkdir(parents=True)
        (tmp_path / "serving_model" / str(version) / "saved_model.pb").write_bytes(b"model")
    config = tmp_path / "models.config"
    config.write_text(CONFIG)
    rollout = tmp_path / "rollout.json"
    rollout.write_text(json.dumps({"model": "cfpb", "split": {"stable": 50, "canary": 50}}))
    manager = versions.ModelManager(
        versions.read_model_config(str(config)), lambda s: Batcher(s.run, 64), poll_seconds=0
    )
    router = Router(manager, str(rollout), str(config))
    router.start()
    manager.start()
    log = RequestLog(str(tmp_path / "log"))
    service = PredictService(manager, log, Metrics(), router=router)
    yield service
    manager.stop()
    log.close()


def client(service: PredictService, token: str | None = None) -> TestClient:
    return TestClient(create_app(service, token))


def rows(count: int, every: int = 300) -> list[dict]:
    """Bundled rows as a client sends them: the features, not the label."""
    return [{key: row[key] for key in COLUMNS} for row in bundled_rows(every=every)[:count]]


def mortgages_and_others(mortgages: int, others: int) -> list[dict]:
    every = rows(2000, every=1)
    return [r for r in every if r["product"] == "Mortgage"][:mortgages] + [
        r for r in every if r["product"] != "Mortgage"
    ][:others]


def column_inputs(found: list[dict]) -> list[dict]:
    return [
        {"name": key, "shape": [len(found)], "datatype": "BYTES", "data": [r[key] for r in found]}
        for key in COLUMNS
    ]


def logged(service: PredictService, request_id: str) -> list[tuple]:
    with sqlite3.connect(service.request_log.path) as connection:
        return connection.execute(
            "SELECT protocol, instance, complaint_id, model_version, arm, assignment, "
            "dispute_probability FROM predictions WHERE request_id = ? ORDER BY id",
            (request_id,),
        ).fetchall()


def test_infer_with_feature_tensors_answers_as_v1_predict_and_is_routed_and_logged(served):
    http = client(served)
    found = mortgages_and_others(2, 2)
    answer = http.post(f"{URL}/infer", json={"id": "oip-1", "inputs": column_inputs(found)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    version = int(body["model_version"])
    assert (body["model_name"], body["id"], version in (1, 2)) == ("cfpb", "oip-1", True)
    mortgage = [r["product"] == "Mortgage" for r in found]
    assert mortgage.count(True) == 2  # a fake answer that depends on each row's own features
    probability, disputed = body["outputs"]
    assert {k: v for k, v in probability.items() if k != "data"} == {
        "name": "dispute_probability",
        "datatype": "FP32",
        "shape": [4],
    }
    expected = np.array([version / 10 + 0.05 * m for m in mortgage], np.float32)
    np.testing.assert_array_equal(np.array(probability["data"], np.float32), expected)
    assert disputed == {
        "name": "disputed",
        "datatype": "INT64",
        "shape": [4],
        "data": [int(m) for m in mortgage],
    }
    v1 = http.post("/v1/models/cfpb:predict", json={"instances": found}).json()["predictions"]
    assert [p["dispute_probability"] for p in v1] == body["outputs"][0]["data"]
    assert [p["disputed"] for p in v1] == body["outputs"][1]["data"]
    # The split is sticky by the first complaint id, as for /v1; a version or label named in
    # the URL is explicit; "outputs" chooses what comes back.
    named = http.post(
        f"{URL}/versions/canary/infer",
        json={"id": "oip-2", "inputs": column_inputs(found[:1]), "outputs": [{"name": "disputed"}]},
    ).json()
    assert (named["model_version"], [o["name"] for o in named["outputs"]]) == ("2", ["disputed"])
    numbered = http.post(
        f"{URL}/versions/3/infer", json={"id": "oip-3", "inputs": column_inputs(found[:1])}
    )
    assert numbered.json()["model_version"] == "3"
    served.request_log.close()
    arm = {1: "stable", 2: "canary"}[version]
    first = [(r[0], r[1], r[3], r[4], r[5]) for r in logged(served, "oip-1")]
    assert first == [("oip-rest", i, version, arm, "split") for i in range(4)]
    assert [r[2] for r in logged(served, "oip-1")] == [r["complaint_id"] for r in found]
    assert logged(served, "oip-2")[0][3:6] == (2, "canary", "explicit")
    assert logged(served, "oip-3")[0][3:6] == (3, None, "explicit")


def test_serialized_examples_in_tritonclients_binary_form(served):
    found = mortgages_and_others(1, 2)
    serialized = []
    for row in found:
        example = example_pb2.Example()
        for key in COLUMNS:
            example.features.feature[key].bytes_list.value.append(row[key].encode())
        serialized.append(example.SerializeToString())
    tensor = triton_http.InferInput("examples", [3], "BYTES")
    tensor.set_data_from_numpy(np.array(serialized, dtype=object), binary_data=True)
    body, json_size = triton_http.InferenceServerClient.generate_request_body([tensor])
    answer = client(served).post(
        f"{URL}/versions/1/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(json_size)},
    )
    assert answer.status_code == 200, answer.text
    header = answer.headers["Inference-Header-Content-Length"]
    result = triton_http.InferenceServerClient.parse_response_body(
        answer.content, header_length=int(header)
    )
    mortgage = np.array([r["product"] == "Mortgage" for r in found])
    np.testing.assert_array_equal(
        result.as_numpy("dispute_probability"), (0.1 + 0.05 * mortgage).astype(np.float32)
    )
    np.testing.assert_array_equal(result.as_numpy("disputed"), mortgage.astype(np.int64))


BAD = {
    "FP32 input": (
        {"inputs": [{"name": "product", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
        400,
        "input 'product' has datatype FP32; this model takes BYTES (serialized tf.Examples, "
        "or one text feature per tensor)",
    ),
    "shape": (
        {"inputs": [{"name": "product", "shape": [2], "datatype": "BYTES", "data": ["Mortgage"]}]},
        400,
        "input 'product' has shape [2] but 1 element(s) of data",
    ),
    "rank": (
        {"inputs": [{"name": "product", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]}]},
        400,
        "input 'product' has shape [1, 2]; send [N] (or [N, 1]), one row per example",
    ),
    "unknown input": (
        {"inputs": [{"name": "prodcut", "shape": [1], "datatype": "BYTES", "data": ["Mortgage"]}]},
        400,
        "unknown input(s) 'prodcut'; this model takes 'examples' (serialized tf.Examples) or one "
        f"BYTES tensor per feature: {', '.join(sorted(COLUMNS))}",
    ),
    "unknown output": (
        {
            "inputs": [{"name": "product", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
            "outputs": [{"name": "scores"}],
        },
        400,
        "unknown output(s) 'scores'; signature 'serving_default' has: dispute_probability, "
        "disputed",
    ),
    "rows differ": (
        {
            "inputs": [
                {"name": "product", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
                {"name": "issue", "shape": [1], "datatype": "BYTES", "data": ["c"]},
            ]
        },
        400,
        "every input must have the same number of rows; got product: 2, issue: 1",
    ),
    "only passthrough": (
        {"inputs": [{"name": "complaint_id", "shape": [1], "datatype": "BYTES", "data": ["7"]}]},
        400,
        "instance 0 has only passthrough features: complaint_id (carried for joins and slicing, "
        "never learned from). The model learns from: "
        + ", ".join(sorted(set(COLUMNS) - set(features.PASSTHROUGH_KEYS))),
    ),
    "not a tf.Example": (
        {"inputs": [{"name": "examples", "shape": [1], "datatype": "BYTES", "data": ["\x07"]}]},
        400,
        "example 0 is not a serialized tf.train.Example",
    ),
    "no inputs": ({"id": "x"}, 400, "'inputs' must be a non-empty array of tensors"),
}


def test_bad_requests_get_the_protocols_error_in_one_line(served):
    http = client(served)
    for name, (body, status, message) in BAD.items():
        answer = http.post(f"{URL}/infer", json=body)
        assert (answer.status_code, answer.json()) == (status, {"error": message}), name
    answer = http.post(f"{URL}/infer", content=b"{")
    assert answer.status_code == 400 and answer.json()["error"].startswith("JSON parse error: ")
    one = {"inputs": column_inputs(rows(1))}
    for path, message in [
        ("/v2/models/loans/infer", "Servable not found for request: Latest(loans)"),
        (f"{URL}/versions/9/infer", "Servable not found for request: Specific(cfpb, 9)"),
        (f"{URL}/versions/blue/infer", "Unrecognized servable version label: blue"),
    ]:
        answer = http.post(path, json=one)
        assert (answer.status_code, answer.json()) == (404, {"error": message}), path
    assert http.get(f"{URL}/infer").status_code == 405
    served.request_log.close()
    with sqlite3.connect(served.request_log.path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM predictions").fetchone() == (0,)


def test_health_metadata_and_readiness(served):
    http = client(served)
    assert (http.get("/v2/health/live").status_code, http.get("/v2/health/ready").json()) == (
        200,
        {"ready": True},
    )
    server = http.get("/v2").json()
    assert (server["name"], server["extensions"]) == ("cfpb-serving", ["binary_tensor_data"])
    assert server["version"].startswith("tensorflow-2.")
    assert http.get(URL).json() == {
        "name": "cfpb",
        "versions": ["1", "2", "3"],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "examples", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "dispute_probability", "datatype": "FP32", "shape": [-1]},
            {"name": "disputed", "datatype": "INT64", "shape": [-1]},
        ],
    }
    assert http.get(f"{URL}/versions/stable").json()["name"] == "cfpb"
    ready = http.get(f"{URL}/versions/2/ready")
    assert (ready.status_code, ready.json()) == (200, {"name": "cfpb", "ready": True})
    assert http.get(f"{URL}/versions/7/ready").status_code == 400
    missing = http.get("/v2/models/loans/ready")
    assert missing.json() == {"error": "Servable not found for request: Latest(loans)"}
    assert missing.status_code == 404


def test_the_bearer_token_guards_what_v1_guards(served):
    http = client(served, token="s3cret")
    one = {"inputs": column_inputs(rows(1))}
    assert http.post(f"{URL}/infer", json=one).status_code == 401
    assert http.get(URL).status_code == 401 and http.get("/v2").status_code == 401
    # Health and readiness stay open, as /v1's model status does.
    assert http.get("/v2/health/ready").status_code == 200
    assert http.get(f"{URL}/ready").status_code == 200
    accepted = http.post(f"{URL}/infer", json=one, headers={"Authorization": "bearer s3cret"})
    assert accepted.status_code == 200


class Context:
    """What a grpc servicer context does, as far as these handlers use it."""

    def __init__(self, metadata=()):
        self.metadata = metadata

    def invocation_metadata(self):
        return self.metadata

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing = dict(metadata)

    def abort(self, code, details):
        raise grpc.RpcError(code, details)


def test_grpc_model_infer_takes_raw_and_typed_contents_and_is_logged(served):
    servicer = InferenceServicer(served, token=None)
    found = mortgages_and_others(1, 1)
    request = service_pb2.ModelInferRequest(model_name="cfpb", model_version="canary", id="g-1")
    for key in COLUMNS:
        tensor = request.inputs.add(name=key, datatype="BYTES", shape=[2])
        tensor.contents.bytes_contents.extend(r[key].encode() for r in found)
    response = servicer.ModelInfer(request, Context())
    assert (response.model_name, response.model_version, response.id) == ("cfpb", "2", "g-1")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("dispute_probability", "FP32", [2]),
        ("disputed", "INT64", [2]),
    ]
    mortgage = np.array([r["product"] == "Mortgage" for r in found])
    probability = np.frombuffer(response.raw_output_contents[0], "<f4")
    np.testing.assert_array_equal(probability, (0.2 + 0.05 * mortgage).astype(np.float32))
    raw = service_pb2.ModelInferRequest(model_name="cfpb", id="g-2")
    raw.inputs.add(name="product", datatype="BYTES", shape=[1])
    raw.raw_input_contents.append(len(b"Mortgage").to_bytes(4, "little") + b"Mortgage")
    raw.outputs.add(name="disputed")
    answer = servicer.ModelInfer(raw, Context())
    assert [o.name for o in answer.outputs] == ["disputed"]
    assert np.frombuffer(answer.raw_output_contents[0], "<i8").tolist() == [1]
    served.request_log.close()
    assert [r[:2] + r[3:6] for r in logged(served, "g-1")] == [
        ("oip-grpc", 0, 2, "canary", "explicit"),
        ("oip-grpc", 1, 2, "canary", "explicit"),
    ]
    assert logged(served, "g-2")[0][0] == "oip-grpc" and logged(served, "g-2")[0][5] == "split"


def test_grpc_errors_carry_the_matching_status_codes(served):
    servicer = InferenceServicer(served, token="s3cret")
    good = [("authorization", "Bearer s3cret")]

    def refusal(request, metadata=good) -> tuple:
        with pytest.raises(grpc.RpcError) as raised:
            servicer.ModelInfer(request, Context(metadata))
        return raised.value.args

    request = service_pb2.ModelInferRequest(model_name="cfpb")
    request.inputs.add(name="product", datatype="INT64", shape=[1]).contents.int64_contents.append(
        3
    )
    assert refusal(request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'product' has datatype INT64; this model takes BYTES (serialized tf.Examples, "
        "or one text feature per tensor)",
    )
    assert refusal(request, metadata=())[0] == grpc.StatusCode.UNAUTHENTICATED
    shape = service_pb2.ModelInferRequest(model_name="cfpb")
    shape.inputs.add(name="product", datatype="BYTES", shape=[3]).contents.bytes_contents.append(
        b"a"
    )
    assert refusal(shape) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'product' has shape [3] but 1 element(s) of data",
    )
    missing = service_pb2.ModelInferRequest(model_name="loans")
    missing.inputs.add(name="product", datatype="BYTES", shape=[1]).contents.bytes_contents.append(
        b"a"
    )
    assert refusal(missing) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(loans)",
    )
    ready = servicer.ModelReady(service_pb2.ModelReadyRequest(name="cfpb", version="3"), Context())
    assert ready.ready is True  # a health check: no token needed
    assert servicer.ServerLive(service_pb2.ServerLiveRequest(), Context()).live is True
    metadata = servicer.ModelMetadata(service_pb2.ModelMetadataRequest(name="cfpb"), Context(good))
    assert (list(metadata.versions), metadata.outputs[0].datatype) == (["1", "2", "3"], "FP32")
