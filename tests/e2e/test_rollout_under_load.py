"""A rollout under load: stable 90 / canary 10 by complaint id, a shadow that is logged and never
answers, a promote and a rollback without a failed request, and bad reloads that change nothing.

Three versions of the trained fixture model (stable 1, canary 2, candidate 3), 8 clients for
about 8 s a phase on loopback, each request one bundled complaint (3,468 distinct ids, cycled).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time

import grpc
import pytest
import requests
from conftest import bundled_rows
from support.serving_harness import Load, ServerProcess, push, write_model_config
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

from models import features
from serving.rollout import Rollout

SPLIT = {"model": "cfpb", "split": {"stable": 90, "canary": 10}}
SHADOW = {**SPLIT, "shadow": {"label": "candidate", "fraction": 1.0}}
PROMOTED = {"model": "cfpb", "split": {"stable": 100, "canary": 0}}
ROWS = list({row["complaint_id"]: row for row in bundled_rows()}.values())
SECONDS = 8.0


def body_for(request_id: str) -> dict:
    """Client c's n-th request: complaint 50 * c + n of ROWS: clients send the same complaints."""
    _, client, count = request_id.split("-")
    row = ROWS[(int(client) * 50 + int(count)) % len(ROWS)]
    return {"instances": [{key: row[key] for key in features.RAW_FEATURE_KEYS}]}


def rows_of(server: ServerProcess, where: str = "1", *args) -> list[dict]:
    with sqlite3.connect(server.request_log) as connection:
        connection.row_factory = sqlite3.Row
        query = f"SELECT * FROM predictions WHERE {where} ORDER BY id"
        return [dict(row) for row in connection.execute(query, args)]


def codes(load: Load) -> dict:
    found: dict = {}
    for code, _, _ in load.results:
        found[code] = found.get(code, 0) + 1
    return found


def reload(server: ServerProcess) -> requests.Response:
    return requests.post(server.url.split("/v1/")[0] + "/v1/admin/reload", timeout=60)


def status(server: ServerProcess) -> dict:
    return requests.get(server.url, timeout=10).json()


def served_version(server: ServerProcess, row: dict) -> str:
    body = {"instances": [{key: row[key] for key in features.RAW_FEATURE_KEYS}]}
    response = requests.post(f"{server.url}:predict", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.headers["X-Model-Version"]


@pytest.fixture
def rollout_server(saved_model, tmp_path):
    base_path = tmp_path / "serving_model"
    for version in (1, 2, 3):
        push(saved_model, base_path, version)
    config = write_model_config(tmp_path / "models.config", base_path, stable=1, canary=2,
                                candidate=3)  # fmt: skip
    rollout = tmp_path / "rollout.json"
    rollout.write_text(json.dumps(SPLIT))
    server = ServerProcess(
        base_path, tmp_path, f"--model_config_file={config}", f"--rollout_file={rollout}"
    ).start()
    yield server, config, rollout, base_path
    assert server.stop() == 0


def test_split_shadow_promote_and_rollback_under_load(rollout_server):
    server, config, rollout_file, base_path = rollout_server
    url = f"{server.url}:predict"
    split = Rollout.from_json(SPLIT)

    # Phase 1: the split alone.
    phase1 = Load(url, clients=8, seconds=SECONDS, body_for=body_for).start().join()
    assert codes(phase1).keys() == {200}, codes(phase1)
    logged = {row["request_id"]: row for row in rows_of(server)}
    assert phase1.ok_ids() <= set(logged)
    arms: dict[str, str] = {}
    for _, request_id, version in phase1.results:
        row = logged[request_id]
        assert (row["assignment"], row["shadow"]) == ("split", 0)
        # The arm is the rollout's own hash of the complaint id, and the version its label's.
        assert row["arm"] == split.arm(row["complaint_id"]), row
        assert version == str(row["model_version"]) == {"stable": "1", "canary": "2"}[row["arm"]]
        # Sticky: a complaint sent again (by another client) goes to the same arm.
        assert arms.setdefault(row["complaint_id"], row["arm"]) == row["arm"]
    n = len(arms)
    canary = list(arms.values()).count("canary")
    assert n > 200 and abs(canary - 0.1 * n) <= 4 * math.sqrt(n * 0.1 * 0.9), (canary, n)
    assert len(phase1.results) > len(arms)  # complaints did come back

    # Phase 2: a shadow scores a copy of every request; it never answers.
    rollout_file.write_text(json.dumps(SHADOW))
    assert reload(server).status_code == 200
    first_id = max(row["id"] for row in rows_of(server))
    phase2 = Load(url, clients=8, seconds=SECONDS, body_for=body_for).start().join()
    assert codes(phase2).keys() == {200}, codes(phase2)
    assert {version for _, _, version in phase2.results} == {"1", "2"}  # never the shadow's 3
    deadline = time.monotonic() + 30  # the last copies are scored and logged after answers
    while True:
        new = rows_of(server, "id > ?", first_id)
        primary = {(r["request_id"], r["instance"]): r for r in new if not r["shadow"]}
        shadow = {(r["request_id"], r["instance"]): r for r in new if r["shadow"]}
        if len(shadow) >= len(primary) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(primary) == set(shadow) and {rid for rid, _ in primary} == phase2.ok_ids()
    for key, row in shadow.items():
        assert (row["model_version"], row["arm"], row["assignment"]) == (3, "candidate", "shadow")
        assert row["complaint_id"] == primary[key]["complaint_id"]
        assert primary[key]["arm"] == arms.get(row["complaint_id"], primary[key]["arm"])
    counted = r'^serving_shadow_predictions_total\{model="cfpb",outcome="ok",version="3"\} (\S+)$'
    while True:  # a copy is counted just after its row is committed
        metrics = requests.get(server.url.split("/v1/")[0] + "/metrics", timeout=10).text
        ok = re.search(counted, metrics, re.M)
        if (ok and float(ok.group(1)) == len(shadow)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert ok and float(ok.group(1)) == len(shadow)
    assert 'outcome="failed"' not in metrics
    for arm, version in (("stable", 1), ("canary", 2)):
        assert re.search(
            rf'^serving_requests_total\{{api="predict",arm="{arm}",code="200",model="cfpb",'
            rf'protocol="rest",version="{version}"\}} [1-9]',
            metrics,
            re.M,
        ), arm
    assert 'serving_rollout_weight_percent{arm="canary",model="cfpb",role="split"} 10.0' in metrics

    # Phase 3: promote (canary becomes stable and takes everything), then roll back, under load.
    load = Load(url, clients=8, seconds=4 * SECONDS, body_for=body_for).start()
    time.sleep(SECONDS / 2)
    write_model_config(config, base_path, stable=2, canary=1, candidate=3)
    Rollout.from_json({**PROMOTED, "shadow": SHADOW["shadow"]}).write(rollout_file)
    assert reload(server).status_code == 200
    promoted = time.time()
    time.sleep(SECONDS)
    rolled_back = time.time()
    write_model_config(config, base_path, stable=1, canary=2, candidate=3)
    Rollout.from_json(SHADOW).write(rollout_file)
    assert reload(server).status_code == 200
    time.sleep(SECONDS / 2)
    load.stop()
    assert codes(load).keys() == {200}, codes(load)
    time.sleep(1)
    iso = [time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) for t in (promoted + 1, rolled_back)]
    between = rows_of(server, "received_at > ? AND received_at < ? AND shadow = 0", *iso)
    assert between and {(r["model_version"], r["arm"]) for r in between} == {(2, "stable")}
    # After the rollback, every complaint is back on its first arm (the split is the same).
    for row in ROWS[:200]:
        if row["complaint_id"] in arms:
            expected = {"stable": "1", "canary": "2"}[arms[row["complaint_id"]]]
            assert served_version(server, row) == expected


BAD_RELOADS = {
    "unknown label": (
        {"stable": 1, "canary": 2, "candidate": 3},
        {"model": "cfpb", "split": {"stable": 90, "blue": 10}},
        "label(s) 'blue' of the rollout are not labels of model cfpb in its model config",
    ),
    "weights": (
        {"stable": 1, "canary": 2, "candidate": 3},
        {"model": "cfpb", "split": {"stable": 90, "canary": 20}},
        "the split's weights add up to 110, not 100",
    ),
    "shadow is the primary": (
        {"stable": 1, "canary": 2, "candidate": 3},
        {"model": "cfpb", "split": {"stable": 90, "canary": 10}, "shadow": {"label": "stable"}},
        "the shadow 'stable' also takes traffic in the split",
    ),
    "config drops a label": (
        {"stable": 2, "candidate": 3},
        SPLIT,
        "label(s) 'canary' of the rollout are not labels of model cfpb in its model config",
    ),
    "not JSON": ({"stable": 1, "canary": 2, "candidate": 3}, "{'model': 'cfpb'", "not JSON: "),
}


def test_a_bad_reload_is_one_line_and_changes_nothing(rollout_server):
    server, config, rollout_file, base_path = rollout_server
    before = status(server)
    routed = {row["complaint_id"]: served_version(server, row) for row in ROWS[:60]}
    assert set(routed.values()) == {"1", "2"}
    for name, (labels, data, reason) in BAD_RELOADS.items():
        write_model_config(config, base_path, **labels)
        rollout_file.write_text(data if isinstance(data, str) else json.dumps(data))
        offset = len(server.log_path.read_bytes())
        response = reload(server)
        assert response.status_code == 400, name
        message = response.json()["error"]
        assert message.startswith(f"--rollout_file {rollout_file}: "), message
        assert reason in message and message.endswith("; nothing changed"), message
        lines = server.log_path.read_bytes()[offset:].decode().splitlines()
        assert [line.split(" serving: ", 1)[1] for line in lines if "serving:" in line] == [
            f"reload refused: {message}"
        ], name
        assert status(server) == before, name
        assert {r["complaint_id"]: served_version(server, r) for r in ROWS[:60]} == routed, name
    # gRPC's ReloadConfig carries the model config and reads the rollout file with it.
    request = model_management_pb2.ReloadConfigRequest()
    model = request.config.model_config_list.config.add()
    model.name, model.base_path = "cfpb", str(base_path)
    model.model_version_policy.all.SetInParent()
    for label, version in {"stable": 1, "canary": 2, "candidate": 3}.items():
        model.version_labels[label] = version
    rollout_file.write_text(json.dumps({"model": "cfpb", "split": {"stable": 50, "blue": 50}}))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        refused = stub.HandleReloadConfigRequest(request, timeout=60)
        assert refused.status.error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert "label(s) 'blue'" in refused.status.error_message
        assert {r["complaint_id"]: served_version(server, r) for r in ROWS[:60]} == routed
        rollout_file.write_text(json.dumps(PROMOTED))  # now a good one: applied
        assert stub.HandleReloadConfigRequest(request, timeout=60).status.error_code == 0
    assert {served_version(server, r) for r in ROWS[:60]} == {"1"}
