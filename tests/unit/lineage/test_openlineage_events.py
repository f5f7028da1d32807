"""OpenLineage events of a small real MLMD store: valid by the spec's schemas, START and an end
per execution, parent links, input files' SHA-256, JSON lines, and a real HTTP receiver."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from openlineage.client.serde import Serde
from support.mlmd_builder import PIPELINE, SAMPLE, StoreBuilder, pipeline_run, sha256

from lineage import command
from lineage.openlineage_events import run_events

FIXTURES = Path(__file__).parents[2] / "fixtures" / "openlineage"


def load_validation():
    spec = importlib.util.spec_from_file_location("ol_validation", FIXTURES / "validation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validation = load_validation()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    builder = StoreBuilder(folder)
    made = pipeline_run(builder, "run-1", trainer_fails=True)
    return folder, builder.store, made


def events_of(store, run: str = "run-1") -> list[dict]:
    return [Serde.to_dict(e) for e in run_events(store, PIPELINE, run)]


def test_every_event_is_valid_by_the_openlineage_spec(built):
    _, store, _ = built
    events = events_of(store)
    assert events, "no events"
    for event in events:
        assert validation.problems(event) == [], (event["eventType"], event["job"]["name"])


def test_the_validator_refuses_what_the_spec_refuses(built):
    _, store, _ = built
    event = events_of(store)[1]
    event["run"]["runId"] = "run-1"
    event["run"]["facets"]["parent"]["_schemaURL"] = "https://example.com/Facet.json#/$defs/X"
    found = validation.problems(event)
    assert "run/runId: 'run-1' is not a 'uuid'" in found
    assert any("no schema here for _schemaURL" in p for p in found)


def test_a_start_and_an_end_per_execution_under_the_pipeline_run(built):
    _, store, _ = built
    events = events_of(store)
    kinds = [(e["eventType"], e["job"]["name"]) for e in events]
    assert kinds[0] == ("START", PIPELINE) and kinds[-1] == ("FAIL", PIPELINE)
    for node, end in (
        ("ExampleGen", "COMPLETE"),
        ("SchemaImporter", "COMPLETE"),
        ("Trainer", "FAIL"),
    ):
        assert kinds.count(("START", f"{PIPELINE}.{node}")) == 1
        assert kinds.count((end, f"{PIPELINE}.{node}")) == 1
    parent_id = events[0]["run"]["runId"]
    for event in events[1:-1]:
        assert event["run"]["facets"]["parent"]["run"]["runId"] == parent_id
        assert event["run"]["facets"]["parent"]["job"] == {
            "namespace": PIPELINE,
            "name": PIPELINE,
            "facets": {},
        }
    failed = next(
        e for e in events if e["eventType"] == "FAIL" and e["job"]["name"].endswith("Trainer")
    )
    assert failed["run"]["facets"]["errorMessage"]["message"] == "Trainer failed; see the run's log"


def test_input_files_carry_their_sha256_and_examples_the_curated_schema(built):
    _, store, made = built
    done = next(
        e for e in events_of(store)
        if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith("ExampleGen")
    )  # fmt: skip
    [source] = done["inputs"]
    assert (source["namespace"], source["name"]) == ("file", str(SAMPLE))
    assert source["facets"]["cfpb_inputFiles"]["files"][0]["sha256"] == sha256(SAMPLE)
    [examples] = done["outputs"]
    assert examples["name"] == made["examples"].uri
    assert examples["facets"]["cfpb_inputFiles"]["sha256"] == made["combined"]
    fields = {f["name"]: f["type"] for f in examples["facets"]["schema"]["fields"]}
    assert fields["product"] == "BYTES" and fields["consumer_disputed"] == "INT"


def test_exporting_twice_gives_the_same_run_ids(built, capsys):
    folder, store, _ = built
    first, second = folder / "a.jsonl", folder / "b.jsonl"
    for output in (first, second):
        assert command.main(["--output-dir", str(folder), "openlineage", "-o", str(output)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"Wrote 8 OpenLineage events of 1 run(s) to {first}"
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    assert len(lines) == 8 and all(validation.problems(e) == [] for e in lines)
    ids = [
        [json.loads(line)["run"]["runId"] for line in p.read_text().splitlines()]
        for p in (first, second)
    ]
    assert ids[0] == ids[1]


class Receiver(BaseHTTPRequestHandler):
    """Records every POST body; answers with the class's status."""

    status = 201
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.status < 300:
            type(self).received.append(json.loads(body))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args):  # the test's output stays quiet
        pass


def serve(status: int):
    handler = type("Handler", (Receiver,), {"status": status, "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def test_the_http_transport_delivers_every_event_in_order(built, capsys):
    folder, store, _ = built
    server, handler = serve(201)
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        code = command.main(["--output-dir", str(folder), "openlineage", "--url", url])
    finally:
        server.shutdown()
    assert code == 0, capsys.readouterr().err
    assert (
        capsys.readouterr().out.strip()
        == f"Sent 8 OpenLineage events of 1 run(s) to {url}/api/v1/lineage"
    )
    assert [e["eventType"] for e in handler.received] == [e["eventType"] for e in events_of(store)]
    assert all(validation.problems(e) == [] for e in handler.received)


def test_an_endpoint_that_refuses_is_one_line_and_exit_1(built, capsys):
    folder, _, _ = built
    server, handler = serve(403)
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        code = command.main(["--output-dir", str(folder), "openlineage", "--url", url])
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert code == 1 and handler.received == []
    assert err == (
        f"error: {url}/api/v1/lineage refused event 1 of 8 (START {PIPELINE}): "
        "HTTP 403 Forbidden; 0 sent before it\n"
    )
