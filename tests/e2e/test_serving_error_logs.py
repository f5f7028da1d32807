"""What a client or an operator did wrong is one line in the server log, never a traceback."""

from __future__ import annotations

import socket
import time

import grpc
import pytest
import requests
from conftest import bundled_rows
from support.serving_harness import ServerProcess, push
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

CONFIG = """model_config_list {
  config { name: "cfpb" base_path: "serving_model" model_platform: "tensorflow" }
}
"""


@pytest.fixture(scope="module")
def configured_server(saved_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("error_logs")
    push(saved_model, workdir / "serving_model", 1)
    (workdir / "models.config").write_text(CONFIG)
    server = ServerProcess(
        workdir / "serving_model", workdir, f"--model_config_file={workdir / 'models.config'}"
    ).start()
    yield server, workdir
    server.stop()


def log_size(server: ServerProcess) -> int:
    return server.log_path.stat().st_size


def lines_since(server: ServerProcess, offset: int, settle: float = 1.0) -> list[str]:
    """The log lines written after offset, once the log has grown and then been quiet."""
    deadline = time.monotonic() + 15
    while log_size(server) == offset and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(settle)  # a traceback would follow its first line within this
    text = server.log_path.read_bytes()[offset:].decode(errors="replace")
    return [line for line in text.splitlines() if line.strip()]


def one_line(lines: list[str], *parts: str) -> str:
    assert len(lines) == 1, "\n".join(lines)
    assert "Traceback" not in lines[0] and all(part in lines[0] for part in parts), lines[0]
    return lines[0]


def test_a_client_gone_before_its_body_is_whole_is_one_line(configured_server):
    server, _ = configured_server
    offset = log_size(server)
    body = b'{"instances": [{"product": "%s"' % bundled_rows()[0]["product"].encode()
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/models/cfpb:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + body
        )
        time.sleep(0.3)  # the server has read the part that came
    line = one_line(lines_since(server, offset), "INFO serving: ")
    assert line.endswith(
        f"client disconnected after {len(body)} of 1000 body bytes: POST /v1/models/cfpb:predict"
    )
    assert requests.get(server.url, timeout=10).status_code == 200  # still serving


@pytest.mark.parametrize("problem", ["garbage", "missing"])
def test_a_reload_with_a_bad_or_missing_config_file_is_one_line(configured_server, problem):
    server, workdir = configured_server
    config = workdir / "models.config"
    reload_url = server.url.split("/v1/")[0] + "/v1/admin/reload"
    if problem == "garbage":
        config.write_text("model_config_list { config { nme: 'cfpb' } }\n")
        reason = "not a ModelServerConfig in text format: 1:30 : "
    else:
        config.unlink()
        reason = "cannot be read: No such file or directory"
    try:
        offset = log_size(server)
        response = requests.post(reload_url, timeout=30)
        message = f"--model_config_file {config}: {reason}"
        assert response.status_code == 400
        assert response.json()["error"].startswith(message), response.text
        line = one_line(lines_since(server, offset), "WARNING serving: reload refused: ", message)
        assert line.endswith("; the models served are unchanged")
    finally:
        config.write_text(CONFIG)
    assert requests.post(reload_url, timeout=30).status_code == 200
    assert requests.get(server.url, timeout=10).json()["model_version_status"][0]["version"] == "1"


def test_a_refused_grpc_reload_is_one_line(configured_server):
    server, workdir = configured_server
    request = model_management_pb2.ReloadConfigRequest()
    model = request.config.model_config_list.config.add()
    model.name, model.base_path = "cfpb", str(workdir / "serving_model")
    model.version_labels["stable"] = 7  # no version 7 is loaded
    offset = log_size(server)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        response = stub.HandleReloadConfigRequest(request, timeout=30)
    assert response.status.error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    one_line(
        lines_since(server, offset),
        "WARNING serving: reload refused: model cfpb: labels {'stable': 7} name versions",
    )
