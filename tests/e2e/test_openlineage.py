"""OpenLineage events of real pipeline runs: one that passes the data gate and pushes, one
stopped by it (a product outside the schema's domain). Every event is validated against the
spec's JSON schemas (tests/fixtures/openlineage/); the HTTP transport delivers them to a real
receiver on a loopback port, and an endpoint that refuses is one line and exit 1.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import FIXTURES, bundled_rows, write_rows
from support.faults import unknown_product
from support.pipeline_runs import lineage_command, run_pipeline

from models import features
from pipeline import names
from pipeline.config import PipelineConfig
from pipeline.metadata import artifacts
from pipeline.metadata import store as lineage

PIPELINE = "cfpb-dispute"


def load_validation():
    path = FIXTURES / "openlineage" / "validation.py"
    spec = importlib.util.spec_from_file_location("ol_validation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validation = load_validation()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(output folder, good data file, events of both runs as dicts)."""
    good, bad = tmp_path_factory.mktemp("good"), tmp_path_factory.mktemp("bad")
    output_dir = tmp_path_factory.mktemp("outputs")
    rows = bundled_rows(every=4)
    write_rows(rows, good / "complaints.csv")
    write_rows(unknown_product(rows), bad / "complaints.csv")
    run_pipeline(good, output_dir)
    run_pipeline(bad, output_dir, expect_code=1)  # stopped by the data gate
    events_file = output_dir / "events.jsonl"
    result = lineage_command(output_dir, "openlineage", "--all", "-o", str(events_file))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert (
        result.stdout.strip()
        == f"Wrote {len(events)} OpenLineage events of 2 run(s) to {events_file}"
    )
    return output_dir, good / "complaints.csv", events


def ends(events: list[dict], job: str) -> list[dict]:
    return [e for e in events if e["job"]["name"] == job and e["eventType"] != "START"]


def test_every_event_is_valid_by_the_spec(exported):
    _, _, events = exported
    assert len(events) > 40
    problems = {
        f"{e['eventType']} {e['job']['name']}": found
        for e in events
        if (found := validation.problems(e))
    }
    assert problems == {}


def test_each_execution_starts_and_ends_under_its_pipeline_run(exported):
    output_dir, _, events = exported
    config = PipelineConfig(output_dir=str(output_dir))
    store = lineage.connect(config.metadata_connection_config())
    for run_id in lineage.run_ids(store, PIPELINE):
        records = lineage.run_executions(store, run_id)
        mine = [
            e for e in events
            if any(t["value"] == run_id for t in e["run"]["facets"]["tags"]["tags"])
        ]  # fmt: skip
        parent = mine[0]
        assert (parent["eventType"], parent["job"]["name"]) == ("START", PIPELINE)
        assert mine[-1]["job"]["name"] == PIPELINE
        children = mine[1:-1]
        assert len(children) == 2 * len(records)  # every execution here has ended
        assert {e["run"]["facets"]["parent"]["run"]["runId"] for e in children} == {
            parent["run"]["runId"]
        }
        starts = [e["run"]["runId"] for e in children if e["eventType"] == "START"]
        assert len(set(starts)) == len(records)


def test_the_data_gate_result_is_a_data_quality_facet(exported):
    _, _, events = exported
    passed, failed = ends(events, f"{PIPELINE}.{names.DATA_GATE}")
    assert (passed["eventType"], failed["eventType"]) == ("COMPLETE", "FAIL")

    def assertions(event):
        [checked] = [
            i for i in event["inputs"] if "dataQualityAssertions" in i.get("inputFacets", {})
        ]
        return {
            a["assertion"]: a for a in checked["inputFacets"]["dataQualityAssertions"]["assertions"]
        }

    assert all(a["success"] for a in assertions(passed).values())
    refused = assertions(failed)["schema_anomalies"]
    assert refused["success"] is False and "product" in refused["actual"]
    message = failed["run"]["facets"]["errorMessage"]["message"]
    assert message.startswith("Data validation failed") and "product" in message
    assert ends(events, PIPELINE)[-1]["eventType"] == "FAIL"
    assert not ends(events, f"{PIPELINE}.{names.TRANSFORM}")[1:]  # the bad run trained nothing


def test_row_counts_schema_and_input_file_hashes(exported):
    output_dir, data_file, events = exported
    complete = ends(events, f"{PIPELINE}.{names.EXAMPLE_GEN}")[0]
    [source] = complete["inputs"]
    assert source["name"] == str(data_file)
    digest = hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert source["facets"]["cfpb_inputFiles"]["files"][0]["sha256"] == digest
    [examples] = complete["outputs"]
    splits = examples["facets"]["cfpb_splits"]["splits"]
    [statistics] = ends(events, f"{PIPELINE}.{names.STATISTICS_GEN}")[0]["outputs"]
    assert splits == artifacts.split_counts(statistics["name"])
    assert examples["outputFacets"]["outputStatistics"]["rowCount"] == sum(splits.values())
    assert sum(splits.values()) == len(bundled_rows(every=4))
    transform = ends(events, f"{PIPELINE}.{names.TRANSFORM}")[0]
    [read] = [i for i in transform["inputs"] if i["name"] == examples["name"]]
    quality = read["inputFacets"]["dataQualityMetrics"]
    assert quality["rowCount"] == sum(splits.values())
    product = quality["columnMetrics"]["product"]
    assert (product["count"], product["nullCount"]) == (sum(splits.values()), 0)
    fields = {f["name"] for f in examples["facets"]["schema"]["fields"]}
    assert set(features.RAW_FEATURE_KEYS) <= fields
    assert output_dir.as_posix() in examples["name"]


class Receiver(BaseHTTPRequestHandler):
    status = 200
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.status < 300:
            type(self).received.append(body)
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status", [200, 500])
def test_the_http_transport_against_a_real_receiver(exported, status):
    output_dir, _, events = exported
    handler = type("Handler", (Receiver,), {"status": status, "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        result = lineage_command(output_dir, "openlineage", "--all", "--url", url)
    finally:
        server.shutdown()
    if status == 200:
        assert result.returncode == 0, result.stderr
        assert handler.received == events  # the same events, in the same order
        return
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    # The last line is the command's; lines before it are TensorFlow's C++ start-up notices.
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {url}/api/v1/lineage refused event 1 of {len(events)} (START {PIPELINE}): "
        "HTTP 500 Internal Server Error; 0 sent before it"
    )
