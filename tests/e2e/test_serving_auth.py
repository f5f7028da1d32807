"""The bearer token, and version labels from TF Serving's model config file."""

from __future__ import annotations

import grpc
import pytest
import requests
import tensorflow as tf
from conftest import bundled_rows
from support.serving_harness import ServerProcess, push
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

TOKEN = "s3cret-token"
CONFIG = """model_config_list {{
  config {{
    name: "cfpb"
    base_path: "serving_model"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: "stable" value: {stable} }}
    version_labels {{ key: "canary" value: {canary} }}
  }}
}}
"""


@pytest.fixture(scope="module")
def labelled_server(saved_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("auth")
    base_path = workdir / "serving_model"
    for version in (1, 2, 3):
        push(saved_model, base_path, version)
    (workdir / "token").write_text(TOKEN + "\n")
    (workdir / "models.config").write_text(CONFIG.format(stable=1, canary=2))
    server = ServerProcess(
        base_path,
        workdir,
        f"--auth_token_file={workdir / 'token'}",
        f"--model_config_file={workdir / 'models.config'}",
    ).start()
    yield server, workdir
    server.stop()


def predict(server, path: str = ":predict", token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"instances": [{"product": "Mortgage"}]}
    return requests.post(server.url + path, json=body, headers=headers, timeout=10)


def test_the_token_is_required_except_for_model_status(labelled_server):
    server, _ = labelled_server
    root = server.url.split("/v1/")[0]
    assert predict(server, token=None).status_code == 401
    assert predict(server, token="wrong").status_code == 401
    assert predict(server).status_code == 200
    assert requests.get(server.url, timeout=10).status_code == 200  # health: no token
    assert requests.get(server.url + "/metadata", timeout=10).status_code == 401
    assert requests.get(root + "/metrics", timeout=10).status_code == 401
    assert requests.post(root + "/v1/admin/reload", timeout=10).status_code == 401
    authorized = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(root + "/metrics", headers=authorized, timeout=10).status_code == 200

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "cfpb"
        request.inputs["examples"].string_val.append(b"")
        request.inputs["examples"].dtype = 7  # DT_STRING
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(request, timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = "cfpb"
        assert len(models.GetModelStatus(status, timeout=10).model_version_status) == 2
        with pytest.raises(grpc.RpcError) as raised:
            models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest())
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_labels_route_requests_and_change_only_with_the_token(labelled_server):
    server, workdir = labelled_server
    assert predict(server, "/labels/stable:predict").headers["X-Model-Version"] == "1"
    assert predict(server, "/labels/canary:predict").headers["X-Model-Version"] == "2"
    assert predict(server).headers["X-Model-Version"] == "2"  # the newest loaded version
    assert predict(server, "/versions/3:predict").status_code == 404  # not in the policy
    assert predict(server, "/labels/beta:predict").status_code == 404

    # Promote the canary: edit the config file, then reload; without the token nothing moves.
    (workdir / "models.config").write_text(CONFIG.format(stable=2, canary=1))
    reload_url = server.url.split("/v1/")[0] + "/v1/admin/reload"
    assert requests.post(reload_url, timeout=10).status_code == 401
    assert predict(server, "/labels/stable:predict").headers["X-Model-Version"] == "1"
    reloaded = requests.post(reload_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert reloaded.status_code == 200, reloaded.text
    assert predict(server, "/labels/stable:predict").headers["X-Model-Version"] == "2"
    assert predict(server, "/labels/canary:predict").headers["X-Model-Version"] == "1"

    # A label naming a version that is not loaded is refused, and the labels stay as they were.
    (workdir / "models.config").write_text(CONFIG.format(stable=3, canary=1))
    refused = requests.post(reload_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert refused.status_code == 400 and "not loaded" in refused.json()["error"]
    assert predict(server, "/labels/stable:predict").headers["X-Model-Version"] == "2"


def test_the_bearer_scheme_is_case_insensitive_and_the_token_is_not(labelled_server):
    server, _ = labelled_server
    url = server.url + ":predict"
    body = {"instances": [{"product": bundled_rows()[0]["product"]}]}
    expected = {
        f"bearer {TOKEN}": 200,
        f"BEARER {TOKEN}": 200,
        f"bEaReR  {TOKEN}": 200,  # RFC 7235: 1*SP between the scheme and the token
        f"bearer {TOKEN.upper()}": 401,  # the token itself is compared exactly
        f"Basic {TOKEN}": 401,
        f"bearer{TOKEN}": 401,
        TOKEN: 401,
    }
    got = {
        header: requests.post(url, json=body, headers={"Authorization": header}, timeout=10)
        for header in expected
    }
    assert {header: response.status_code for header, response in got.items()} == expected
    root = server.url.split("/v1/")[0]
    lower = {"Authorization": f"bearer {TOKEN}"}
    assert requests.get(root + "/metrics", headers=lower, timeout=10).status_code == 200

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        example = tf.train.Example()
        example.features.feature["product"].bytes_list.value.append(
            body["instances"][0]["product"].encode()
        )
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "cfpb"
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto([example.SerializeToString()]))
        lower = [("authorization", f"bearer {TOKEN}")]
        assert stub.Predict(request, metadata=lower, timeout=10).model_spec.name == "cfpb"
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(request, metadata=[("authorization", f"bearer {TOKEN}x")], timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
