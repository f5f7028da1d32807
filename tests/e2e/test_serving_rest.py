"""TF Serving's REST API, called as its documentation writes the requests, on a real server."""

from __future__ import annotations

import base64
import json
import sqlite3

import numpy as np
import pytest
import requests
from conftest import bundled_rows

from data.prepare import CFPB_COLUMNS
from models import features
from pipeline.components.example_gen import row_to_example


def serialized(row: dict) -> bytes:
    example = row_to_example(row)
    del example.features.feature[features.LABEL_KEY]  # requests carry no label
    return example.SerializeToString()


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def feature_object(row: dict) -> dict:
    return {key: row[key] for key in features.RAW_FEATURE_KEYS}


def log_rows(server, request_id: str) -> list[dict]:
    with sqlite3.connect(server.request_log) as connection:
        connection.row_factory = sqlite3.Row
        query = "SELECT * FROM predictions WHERE request_id = ? ORDER BY instance"
        return [dict(row) for row in connection.execute(query, (request_id,))]


def test_status_and_metadata(shared_server):
    status = requests.get(shared_server.url, timeout=10)
    assert status.status_code == 200
    assert status.json() == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert requests.get(f"{shared_server.url}/versions/1", timeout=10).json() == status.json()
    metadata = requests.get(f"{shared_server.url}/metadata", timeout=10).json()
    assert metadata["model_spec"] == {"name": "cfpb", "signature_name": "", "version": "1"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["examples"]["dtype"] == "DT_STRING"
    assert sorted(signature["outputs"]) == [features.PREDICTION_KEY, features.DECISION_KEY]
    assert signature["method_name"] == "tensorflow/serving/predict"


def probabilities(answer: list | dict) -> list[float]:
    """The dispute probabilities of a row ("predictions") or columnar ("outputs") answer."""
    if isinstance(answer, dict):
        return answer[features.PREDICTION_KEY]
    return [row[features.PREDICTION_KEY] for row in answer]


def test_every_request_format_gets_the_models_probability(
    shared_server, raw_rows, serving_signature
):
    import tensorflow as tf

    rows = raw_rows[:3]
    records = [serialized(row) for row in rows]
    expected = serving_signature(examples=tf.constant(records))[features.PREDICTION_KEY].numpy()
    url = f"{shared_server.url}:predict"
    bodies = {
        "row, b64": ({"instances": [b64(r) for r in records]}, "predictions"),
        "row, named input": ({"instances": [{"examples": b64(r)} for r in records]}, "predictions"),
        "columnar, b64": ({"inputs": {"examples": [b64(r) for r in records]}}, "outputs"),
        "row, feature objects": ({"instances": [feature_object(r) for r in rows]}, "predictions"),
        "columnar, feature columns": (
            {"inputs": {k: [r[k] for r in rows] for k in features.RAW_FEATURE_KEYS}},
            "outputs",
        ),
    }
    for what, (body, key) in bodies.items():
        response = requests.post(url, json=body, timeout=10)
        assert response.status_code == 200, (what, response.text)
        assert list(response.json()) == [key], what
        np.testing.assert_allclose(probabilities(response.json()[key]), expected, err_msg=what)
        assert response.headers["X-Model-Version"] == "1"
    versioned = requests.post(
        f"{shared_server.url}/versions/1:predict", json={"instances": [b64(records[0])]}, timeout=10
    )
    np.testing.assert_allclose(probabilities(versioned.json()["predictions"]), expected[:1])


def test_the_request_log_holds_the_prediction(shared_server, raw_rows):
    row = {**raw_rows[0], features.ID_KEY: "4242"}
    response = requests.post(
        f"{shared_server.url}:predict",
        json={"instances": [feature_object(row)]},
        headers={"X-Request-Id": "log-check-1"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "log-check-1"
    (logged,) = log_rows(shared_server, "log-check-1")  # committed before the answer came
    assert logged["model_name"] == "cfpb" and logged["model_version"] == 1
    assert logged["complaint_id"] == "4242"
    assert logged["protocol"] == "rest" and logged["unknown_features"] is None
    assert json.loads(logged["features"]) == feature_object(row)
    (answer,) = response.json()["predictions"]
    assert logged["dispute_probability"] == pytest.approx(answer[features.PREDICTION_KEY])
    assert answer[features.DECISION_KEY] in (0, 1)
    assert logged["latency_ms"] > 0 and logged["received_at"].endswith("Z")


def test_unknown_features_are_refused_or_reported(shared_server, raw_rows):
    url = f"{shared_server.url}:predict"
    # The CFPB export's own column names: the model knows none of them.
    export_names = requests.post(
        url, json={"instances": [{"Product": "Mortgage", "Issue": "Billing"}]}, timeout=10
    )
    assert export_names.status_code == 400
    assert "Issue" in export_names.json()["error"] and "Product" in export_names.json()["error"]
    empty = requests.post(url, json={"instances": [b64(b"")]}, timeout=10)
    assert empty.status_code == 400 and "no features" in empty.json()["error"]
    garbage = requests.post(url, json={"instances": [b64(bytes(range(256)))]}, timeout=10)
    assert garbage.status_code == 400 and "error" in garbage.json()

    mixed = {**feature_object(raw_rows[1]), "Product": "Mortgage", "zipcode": "10001"}
    response = requests.post(
        url, json={"instances": [mixed]}, headers={"X-Request-Id": "mixed-1"}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["X-Unknown-Features"] == "Product,zipcode"
    (logged,) = log_rows(shared_server, "mixed-1")
    assert json.loads(logged["unknown_features"]) == ["Product", "zipcode"]
    assert "Product" not in json.loads(logged["features"])  # names are logged, values are not


BAD_REQUESTS = {
    "malformed JSON": (b'{"instances": [', 400),
    "not an object": (b"[1, 2]", 400),
    "no instances or inputs": (b'{"signature_name": "serving_default"}', 400),
    "both instances and inputs": (b'{"instances": [], "inputs": []}', 400),
    "instances not a list": (b'{"instances": "Mortgage"}', 400),
    "a number instance": (b'{"instances": [3]}', 400),
    "a wrong-typed feature": (b'{"instances": [{"product": {"nested": 1}}]}', 400),
    "a float for a text feature": (b'{"instances": [{"product": 1.5}]}', 400),
    "b64 that is not base64": (b'{"instances": [{"b64": "%%%"}]}', 400),
    "an empty batch": (b'{"instances": []}', 400),
    "non-UTF-8 bytes": (b'{"instances": [{"product": "\xff\xfe"}]}', 400),
    "an unknown signature": (b'{"signature_name": "nope", "instances": [{"product": "x"}]}', 400),
    "10,000 instances": (json.dumps({"instances": [{"product": "x"}] * 10_000}).encode(), 413),
    "a 10 MB body": (b'{"instances": ["' + b"x" * 10_000_000 + b'"]}', 413),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_requests_get_tf_servings_error_body(shared_server, name):
    body, code = BAD_REQUESTS[name]
    response = requests.post(
        f"{shared_server.url}:predict",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == code, response.text
    assert list(response.json()) == ["error"] and response.json()["error"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert requests.get(shared_server.url, timeout=10).status_code == 200  # still up


@pytest.mark.parametrize(
    "path, code",
    [
        ("/v1/models/nope:predict", 404),
        ("/v1/models/cfpb/versions/7:predict", 404),
        ("/v1/models/cfpb/labels/canary:predict", 404),
        ("/v1/models/cfpb/versions/x:predict", 400),
        ("/v1/models/cfpb:explain", 404),
        ("/v2/anything", 404),
    ],
)
def test_unknown_models_versions_and_labels_are_404(shared_server, path, code):
    root = shared_server.url.split("/v1/")[0]
    response = requests.post(root + path, json={"instances": [{"product": "x"}]}, timeout=10)
    assert response.status_code == code
    assert list(response.json()) == ["error"]


def test_metrics_count_requests_by_code_and_version(shared_server):
    requests.post(
        f"{shared_server.url}:predict", json={"instances": [{"product": "x"}]}, timeout=10
    )
    requests.post(f"{shared_server.url}:predict", data=b"{", timeout=10)
    text = requests.get(shared_server.url.split("/v1/")[0] + "/metrics", timeout=10).text
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}  # fmt: skip
    # arm: the label a rollout or the client chose; none here
    labels = 'api="predict",arm="",code="{code}",model="cfpb",protocol="rest",version="{version}"'
    ok = "serving_requests_total{" + labels.format(code=200, version=1) + "}"
    bad = "serving_requests_total{" + labels.format(code=400, version="") + "}"
    assert samples[ok] >= 1 and samples[bad] >= 1
    assert samples['serving_model_version_loaded{model="cfpb",version="1"}'] == 1
    assert samples['serving_request_latency_seconds_count{api="predict",protocol="rest"}'] >= 2
    assert samples["serving_request_log_rows_total"] >= 1
    requests.post(shared_server.url.replace("cfpb", "typo") + ":predict", json={}, timeout=10)
    text = requests.get(shared_server.url.split("/v1/")[0] + "/metrics", timeout=10).text
    assert 'model="typo"' not in text and 'model="(unknown)"' in text  # bounded label values


def export_named(row: dict) -> dict:
    """A bundled row under the CFPB export's own column names, plus the complaint_id a client
    adds for joins (the one name the model knows, and never learns from)."""
    named = {
        export: row[canonical]
        for export, canonical in CFPB_COLUMNS.items()
        if canonical not in (features.ID_KEY, features.LABEL_KEY)
    }
    return {features.ID_KEY: row[features.ID_KEY], **named}


# What the server answers for export_named: the export's names are unknown, complaint_id is
# passthrough, and the model learns from the pipeline's columns but the id and tags.
EXPORT_NAMED_REFUSAL = (
    "instance 0 has only unknown features: "
    + ", ".join(
        sorted(n for n, c in CFPB_COLUMNS.items() if c not in (features.ID_KEY, features.LABEL_KEY))
    )
    + " and passthrough complaint_id (carried for joins and slicing, never learned from). "
    + "The model learns from: "
    + ", ".join(sorted(features.MODEL_INPUT_KEYS))
)


def test_export_column_names_beside_a_complaint_id_are_refused(shared_server):
    url = f"{shared_server.url}:predict"
    row = bundled_rows()[0]
    response = requests.post(url, json={"instances": [export_named(row)]}, timeout=10)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": EXPORT_NAMED_REFUSAL}
    # The id and tags alone: nothing the model learns from either.
    carried = {features.ID_KEY: row[features.ID_KEY], features.TAGS_KEY: "Servicemember"}
    response = requests.post(url, json={"instances": [carried]}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "instance 0 has only passthrough features: complaint_id, tags"
    )
    # One learned feature beside them is enough: served, the unknown names reported.
    served = {**export_named(row), "product": row["product"]}
    response = requests.post(url, json={"instances": [served]}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["X-Unknown-Features"].split(",")[:2] == [
        "Company",
        "Company response to consumer",
    ]
