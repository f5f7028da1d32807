"""A rollout routes requests: split by complaint id, bypassed by a named version, shadowed
without the primary waiting, and reloaded together with the model config, or not at all.

The versions are stand-ins (no TensorFlow) behind the real manager, batchers, service and log.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading

import numpy as np
import pytest
from conftest import bundled_rows
from tensorflow.core.protobuf import meta_graph_pb2

from serving import versions
from serving.batching import Batcher
from serving.errors import ServingError
from serving.metrics import Metrics
from serving.request_log import RequestLog
from serving.routing import Router
from serving.servable import FeatureSpec, Signature
from serving.service import PredictService

SIGNATURE = Signature(
    "serving_default",
    meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict"),
    "examples",
    ["dispute_probability"],
    {"product": FeatureSpec("bytes", 1), "complaint_id": FeatureSpec("bytes", 1)},
)
CONFIG = (
    'model_config_list {{ config {{ name: "cfpb" base_path: "serving_model" '
    "model_version_policy {{ all {{}} }} {labels} }} }}"
)


def config_text(**labels: int) -> str:
    return CONFIG.format(
        labels=" ".join(f'version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
    )


class FakeServable:
    """Answers version / 10 for every example; a version's `gate` holds its calls."""

    gates: dict[int, threading.Event] = {}
    broken: set[int] = set()

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version = name, version

    def warm_up(self) -> int:
        return 0

    def signature(self, name: str) -> Signature:
        if name != SIGNATURE.name:
            raise KeyError(name)
        return SIGNATURE

    def run(self, signature: str, examples: list[bytes]) -> dict:
        gate = self.gates.get(self.version)
        if gate is not None:
            assert gate.wait(10)
        if self.version in self.broken:
            raise RuntimeError("the shadow model is broken")
        return {"dispute_probability": np.full(len(examples), self.version / 10)}


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "Servable", FakeServable)
    FakeServable.gates, FakeServable.broken = {}, set()
    for version in (1, 2, 3):
        (tmp_path / "serving_model" / str(version)).mkdir(parents=True)
        (tmp_path / "serving_model" / str(version) / "saved_model.pb").write_bytes(b"model")
    config = tmp_path / "models.config"
    config.write_text(config_text(stable=1, canary=2, candidate=3))
    rollout = tmp_path / "rollout.json"
    rollout.write_text(json.dumps({"model": "cfpb", "split": {"stable": 90, "canary": 10}}))
    manager = versions.ModelManager(
        versions.read_model_config(str(config)), lambda s: Batcher(s.run, 64), poll_seconds=0
    )
    router = Router(manager, str(rollout), str(config))
    router.start()
    manager.start()
    metrics = Metrics()
    log = RequestLog(str(tmp_path / "log"))
    service = PredictService(manager, log, metrics, router=router)
    service.paths = (config, rollout)
    yield service
    manager.stop()
    log.close()


def predict(service: PredictService, request_id: str, rows: list[dict], label=None, version=None):
    call = service.begin(request_id, "rest", "cfpb", version, label, None)
    instances = [{k: row[k] for k in ("product", "complaint_id") if row[k]} for row in rows]
    service.parse_json(call, {"instances": instances})
    outputs = service.submit_logged(call).result(10)
    return call, outputs["dispute_probability"].tolist()


def logged(service: PredictService) -> list[tuple]:
    with sqlite3.connect(service.request_log.path) as connection:
        return connection.execute(
            "SELECT request_id, instance, complaint_id, model_version, arm, assignment, shadow "
            "FROM predictions ORDER BY id"
        ).fetchall()


def test_requests_are_split_by_complaint_id_and_named_versions_bypass_it(served):
    rows = list({row["complaint_id"]: row for row in bundled_rows()}.values())[:2000]
    arms = {}
    for index, row in enumerate(rows):
        call, answer = predict(served, f"r{index}", [row])
        assert (call.assignment, answer) == ("split", [call.loaded.servable.version / 10])
        assert call.loaded.servable.version == {"stable": 1, "canary": 2}[call.arm]
        arms[row["complaint_id"]] = call.arm
    canary = list(arms.values()).count("canary")
    assert abs(canary - 200) <= 4 * math.sqrt(2000 * 0.1 * 0.9), canary
    # Sticky: the same complaint again, in another request (and first of several), same arm.
    for index, row in enumerate(rows[:200]):
        call, _ = predict(served, f"again{index}", [row, rows[-1 - index]])
        assert call.arm == arms[row["complaint_id"]]
    # No complaint id: the request id decides, and decides the same way every time.
    anonymous = [{**rows[0], "complaint_id": ""}]
    assert len({predict(served, "same-id", anonymous)[0].arm for _ in range(20)}) == 1
    # A named label or version bypasses the split.
    call, answer = predict(served, "named", [rows[0]], label="canary")
    assert (call.assignment, call.arm, answer) == ("explicit", "canary", [0.2])
    call, answer = predict(served, "numbered", [rows[0]], version=3)
    assert (call.assignment, call.arm, answer) == ("explicit", None, [0.3])
    served.request_log.close()
    last = logged(served)[-2:]
    assert last == [
        ("named", 0, rows[0]["complaint_id"], 2, "canary", "explicit", 0),
        ("numbered", 0, rows[0]["complaint_id"], 3, None, "explicit", 0),
    ]


def test_a_shadow_scores_a_copy_that_is_logged_and_never_awaited(served):
    config, rollout = served.paths
    rollout.write_text(
        json.dumps(
            {
                "model": "cfpb",
                "split": {"stable": 50, "canary": 50},
                "shadow": {"label": "candidate", "fraction": 1.0},
            }
        )
    )
    served.router.reload()
    rows = bundled_rows(every=700)[:3]
    gate = FakeServable.gates[3] = threading.Event()
    call, answer = predict(served, "shadowed", rows)  # answered while the shadow is held
    assert answer == [call.loaded.servable.version / 10] * 3 and call.loaded.servable.version != 3
    gate.set()
    named, _ = predict(served, "named", rows[:1], label="stable")  # explicit: never shadowed
    served.manager.stop()  # answers what the shadow batcher holds, then the log is closed
    served.request_log.close()
    primary = [r for r in logged(served) if r[0] == "shadowed" and not r[6]]
    shadow = [r for r in logged(served) if r[0] == "shadowed" and r[6]]
    assert [r[1:3] for r in shadow] == [r[1:3] for r in primary]  # same instances and ids
    assert {r[3:] for r in shadow} == {(3, "candidate", "shadow", 1)}
    assert {r[4:] for r in primary} == {(call.arm, "split", 0)}
    with sqlite3.connect(served.request_log.path) as connection:
        labels = connection.execute("SELECT DISTINCT version_label FROM predictions").fetchall()
    assert labels == [(None,), ("stable",)]  # what the client named: only "named" named one
    assert [r for r in logged(served) if r[0] == "named"] == [
        ("named", 0, rows[0]["complaint_id"], 1, "stable", "explicit", 0)
    ]
    text = served.metrics.exposition().decode()
    assert 'serving_shadow_predictions_total{model="cfpb",outcome="ok",version="3"} 1.0' in text


def test_requests_the_shadows_version_answered_are_not_copied_to_it(served):
    config, rollout = served.paths
    config.write_text(config_text(stable=1, canary=2, shadow=2))  # canary and shadow: one model
    rollout.write_text(
        json.dumps(
            {"model": "cfpb", "split": {"stable": 50, "canary": 50}, "shadow": {"label": "shadow"}}
        )
    )
    served.router.reload()
    rows = bundled_rows(every=70)[:40]
    calls = [predict(served, f"r{i}", [row])[0] for i, row in enumerate(rows)]
    served.manager.stop()
    served.request_log.close()
    by_canary = {c.request_id for c in calls if c.arm == "canary"}
    assert by_canary and len(by_canary) < len(calls)
    shadowed = {r[0] for r in logged(served) if r[6]}
    assert shadowed == {c.request_id for c in calls} - by_canary


def test_a_failing_shadow_is_counted_and_never_fails_the_primary(served, caplog):
    config, rollout = served.paths
    rollout.write_text(
        json.dumps({"model": "cfpb", "split": {"stable": 100}, "shadow": {"label": "candidate"}})
    )
    served.router.reload()
    FakeServable.broken.add(3)
    rows = bundled_rows(every=700)[:5]
    for index, row in enumerate(rows):
        call, answer = predict(served, f"r{index}", [row])
        assert answer == [0.1] and call.arm == "stable"
    served.manager.stop()
    text = served.metrics.exposition().decode()
    assert 'serving_shadow_predictions_total{model="cfpb",outcome="failed",version="3"} 5.0' in text
    failures = [m for r in caplog.records if (m := r.getMessage()).startswith("shadow of model")]
    assert len(failures) == 1, failures  # one line, not one per request
    assert failures[0].startswith("shadow of model cfpb version 3 failed: RuntimeError: the ")


def test_a_reload_applies_config_and_rollout_together_or_neither(served):
    config, rollout = served.paths
    before = served.router.routes
    refusals = {
        "unknown label": (
            config_text(stable=1, canary=2, candidate=3),
            {"model": "cfpb", "split": {"stable": 50, "blue": 50}},
            f"--rollout_file {rollout}: label(s) 'blue' of the rollout are not labels of model "
            "cfpb in its model config (its labels: canary, candidate, stable); nothing changed",
        ),
        "label dropped from the config": (
            config_text(stable=2),
            {"model": "cfpb", "split": {"stable": 90, "canary": 10}},
            f"--rollout_file {rollout}: label(s) 'canary' of the rollout are not labels of model "
            "cfpb in its model config (its labels: stable); nothing changed",
        ),
        "weights": (
            config_text(stable=2, canary=1),
            {"model": "cfpb", "split": {"stable": 90, "canary": 20}},
            f"--rollout_file {rollout}: the split's weights add up to 110, not 100; nothing "
            "changed",
        ),
        "shadow in the split": (
            config_text(stable=2, canary=1),
            {"model": "cfpb", "split": {"stable": 90, "canary": 10}, "shadow": {"label": "canary"}},
            f"--rollout_file {rollout}: the shadow 'canary' also takes traffic in the split; a "
            "shadow only scores copies of it; nothing changed",
        ),
    }
    for name, (text, data, message) in refusals.items():
        config.write_text(text)
        rollout.write_text(json.dumps(data))
        with pytest.raises(ServingError) as raised:
            served.router.reload()
        assert raised.value.message == message, name
        assert served.router.routes is before, name
        assert served.manager.models["cfpb"].settings.labels == {
            "stable": 1,
            "canary": 2,
            "candidate": 3,
        }, name
    # A promote: stable moves to version 2 and takes all the traffic, in one reload.
    config.write_text(config_text(stable=2, canary=1))
    rollout.write_text(json.dumps({"model": "cfpb", "split": {"stable": 100, "canary": 0}}))
    served.router.reload()
    assert served.manager.models["cfpb"].settings.labels == {"stable": 2, "canary": 1}
    call, answer = predict(served, "after", bundled_rows(every=900)[:1])
    assert (call.arm, answer) == ("stable", [0.2])
    # No rollout file any more: refused too (a typo'd path must not end a rollout silently).
    rollout.unlink()
    with pytest.raises(ServingError) as raised:
        served.router.reload()
    assert raised.value.message.startswith(f"--rollout_file {rollout}: cannot be read: ")
