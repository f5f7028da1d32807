"""Versions come and go under load: pushed, refused when broken, never read from staging."""

from __future__ import annotations

import time

import requests
from support.serving_harness import Load, ServerProcess, logged, push


def wait_for_state(server: ServerProcess, version: str, state: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(server.url, timeout=10).json()["model_version_status"]
        if any(v["version"] == version and v["state"] == state for v in status):
            return
        time.sleep(0.2)
    raise AssertionError(f"version {version} not {state} after {timeout}s:\n{server.log()}")


def test_a_pushed_version_takes_over_under_load_without_a_failed_request(
    saved_model, raw_rows, tmp_path
):
    base_path = tmp_path / "serving_model"
    push(saved_model, base_path, 1)
    # Pusher's staging folder, with a complete model in it: it must never be loaded.
    push(saved_model, base_path / ".staging", 9)
    (base_path / "notes").mkdir()  # not an integer: not a version
    server = ServerProcess(base_path, tmp_path).start()
    try:
        row = {k: raw_rows[0][k] for k in ("product", "issue", "company", "state")}
        load = Load(f"{server.url}:predict", {"instances": [row]}, clients=8, seconds=60).start()
        time.sleep(2)
        push(saved_model, base_path, 2)  # the new version, renamed into place
        # Loading competes with the load for the CPU: a few seconds, more on a busy machine.
        wait_for_state(server, "2", "AVAILABLE")
        time.sleep(1)
        # A broken version, newer than the serving one: refused, and version 2 keeps serving.
        broken = base_path / "5"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
        (base_path / "6").mkdir()  # a version still being copied: no saved_model.pb yet
        wait_for_state(server, "5", "END")
        time.sleep(1)
        load.stop()

        codes = {}
        for code, _, _ in load.results:
            codes[code] = codes.get(code, 0) + 1
        assert codes.keys() == {200}, codes
        assert len(load.results) > 200
        versions = [version for _, _, version in load.results]
        assert {"1", "2"} <= set(versions) <= {"1", "2"}
        assert versions[-1] == "2"
        assert set(logged(server, "model_version")) == {1, 2}
        assert load.ok_ids() <= set(logged(server))

        status = requests.get(server.url, timeout=10).json()["model_version_status"]
        states = {entry["version"]: entry for entry in status}
        assert states["2"]["state"] == "AVAILABLE"
        assert states["1"]["state"] == "END"  # unloaded after the swap
        assert states["5"]["state"] == "END"
        assert "refused" in states["5"]["status"]["error_message"]
        assert "9" not in states and "6" not in states
        assert "version 5 refused" in server.log()
    finally:
        assert server.stop() == 0
