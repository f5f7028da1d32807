"""python -m monitoring on a pipeline-pushed model, its MLMD lineage and a real request log.

One tiny pipeline run pushes a model; a real server serves it and logs four phases of REST
traffic, each a window of the log by time:
  healthy    rows of the bundled sample the pipeline did not read: exit 0
  mortgages  the same rows, every product set to Mortgage (a known value): exit 1, skew
  new value  product "Crypto wallet", outside the schema's domain: exit 1, anomaly
  copied     a version copied in by hand, never pushed by the pipeline: exit 2
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests
from conftest import TINY_RUN_FLAGS, bundled_rows, write_rows
from support.serving_harness import ServerProcess, push

from models import features
from pipeline.config import PROJECT_ROOT
from serving import request_log

BATCH = 50


def send(server: ServerProcess, rows: list[dict]) -> None:
    for start in range(0, len(rows), BATCH):
        instances = [
            {key: row[key] for key in features.RAW_FEATURE_KEYS}
            for row in rows[start : start + BATCH]
        ]
        response = requests.post(f"{server.url}:predict", json={"instances": instances}, timeout=60)
        assert response.status_code == 200, response.text


def mark() -> str:
    time.sleep(0.01)  # the log's times have millisecond resolution
    moment = request_log.iso(time.time())
    time.sleep(0.01)
    return moment


def wait_for_version(server: ServerProcess, version: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.get(f"{server.url}/versions/{version}", timeout=10)
        if response.status_code == 200 and "AVAILABLE" in response.text:
            return
        time.sleep(0.3)
    raise AssertionError(f"version {version} not served after {timeout}s:\n{server.log()}")


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """(output folder, request log folder, workdir, {phase: (since, until)})."""
    rows = bundled_rows()
    data_dir = tmp_path_factory.mktemp("data")
    output_dir = tmp_path_factory.mktemp("outputs")
    write_rows(rows[::4], data_dir / "complaints.csv")  # what the pipeline trains on
    # The same distribution, rows the pipeline never read. Spread over the whole sample: it
    # is three extracts one after the other (one is New York's), so a run of rows is skewed.
    unseen = rows[2::22][:300]
    command = [
        sys.executable,
        str(PROJECT_ROOT / "runners" / "beam_runner.py"),
        *("--data-dir", str(data_dir), "--output-dir", str(output_dir), *TINY_RUN_FLAGS),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    base_path = output_dir / "serving_model"
    (version,) = [p for p in base_path.iterdir() if not p.name.startswith(".")]

    workdir = tmp_path_factory.mktemp("server")
    server = ServerProcess(base_path, workdir).start()
    try:
        windows = {}
        start = mark()
        send(server, unseen)
        windows["healthy"] = (start, start := mark())
        send(server, [{**row, "product": "Mortgage"} for row in unseen[::2]])
        windows["mortgages"] = (start, start := mark())
        send(server, [{**row, "product": "Crypto wallet"} for row in unseen[1::2]])
        windows["new value"] = (start, start := mark())
        push(base_path / version.name, base_path, int(version.name) + 1)  # not the pipeline's
        wait_for_version(server, str(int(version.name) + 1))
        start = mark()
        send(server, unseen[::2])
        windows["copied"] = (start, mark())
    finally:
        server.stop()
    return output_dir, workdir / "request_log", workdir, windows


def run_monitor(traffic, phase: str, *flags: str) -> tuple[subprocess.CompletedProcess, dict]:
    output_dir, log_dir, workdir, windows = traffic
    since, until = windows[phase]
    report = workdir / f"{phase}.json"
    command = [
        sys.executable, "-m", "monitoring",
        "--output-dir", str(output_dir), "--request-log", str(log_dir),
        "--since", since, "--until", until,
        "--json", str(report), "--html", str(workdir / f"{phase}.html"), *flags,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    return result, json.loads(report.read_text()) if report.exists() else {}


def test_traffic_like_the_training_data_is_healthy(traffic):
    result, report = run_monitor(traffic, "healthy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("HEALTHY: cfpb version ")
    assert report["window"]["rows"] == 300 and report["alerts"] == []
    skewed = {skew["feature"] for skew in report["skew"]}
    assert set(features.CATEGORICAL_KEYS) <= skewed  # every category was compared
    assert report["prediction"]["test_count"] > 100 and report["prediction"]["window_count"] == 300
    # The baseline came from lineage: this run's statistics, curated schema and test split.
    output_dir = str(traffic[0])
    assert "StatisticsGen" in report["baseline"]["training statistics"]
    assert "SchemaImporter" in report["baseline"]["schema"]
    assert all(output_dir in where for where in report["baseline"].values())
    page = (traffic[2] / "healthy.html").read_text()
    assert 'id="skew"' in page and 'id="prediction-plot"' in page


def test_one_product_only_is_an_alert_naming_the_feature(traffic):
    result, report = run_monitor(traffic, "mortgages")
    assert result.returncode == 1, result.stdout + result.stderr
    assert [s["feature"] for s in report["skew"] if s["alert"]] == ["product"]
    assert "ALERT skew: product l_infty" in result.stdout
    assert report["anomalies"] == []  # Mortgage is in the schema's domain


def test_a_product_outside_the_domain_is_an_alert_naming_the_value(traffic):
    result, report = run_monitor(traffic, "new value")
    assert result.returncode == 1, result.stdout + result.stderr
    (anomaly,) = report["anomalies"]
    assert anomaly["feature"] == "product" and "Crypto wallet" in anomaly["description"]
    assert "ALERT schema: product" in result.stdout


def test_a_version_the_pipeline_never_pushed_cannot_be_judged(traffic):
    result, report = run_monitor(traffic, "copied")
    assert result.returncode == 2
    assert "was never pushed according to this MLMD store" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert report == {} and not (traffic[2] / "copied.html").exists()
