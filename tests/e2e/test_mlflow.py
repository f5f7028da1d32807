"""Pipeline runs in a real MLflow tracking server (SQLite backend, loopback port).

Run 1 is made while the server is down: it succeeds and says so in one line; the back-fill
command then logs it from MLMD. Run 2 (more training steps) logs itself when it finishes.
The two are compared through MLflow's client against MLMD, the registry against the serving
folder, and the UI's run comparison page is opened in headless Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
from conftest import write_quarter_sample
from support.pipeline_runs import lineage_command, run_pipeline

from lineage.mlflow_record import RUN_ID_TAG
from pipeline import names
from pipeline.config import PROJECT_ROOT, PipelineConfig
from pipeline.metadata import evaluations
from pipeline.metadata import store as lineage

EXPERIMENT = "cfpb-dispute"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    """`mlflow server` on a free loopback port, stopped with its workers (its own group)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "mlflow-server.log"
        # The project's launcher: `mlflow server` itself fails on the lock's SQLAlchemy 1.4.
        command = [
            sys.executable, "-m", "lineage.mlflow_server",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=PROJECT_ROOT,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"mlflow server did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server and its workers
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """(server, output folder, [run 1 stdout, back-fill stdout, run 2 stdout]), server up."""
    data_dir, output_dir = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("outputs")
    write_quarter_sample(data_dir)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    first = run_pipeline(data_dir, output_dir, "--mlflow-tracking-uri", down)
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    try:
        backfill = lineage_command(output_dir, "mlflow", "--all", "--tracking-uri", server.url)
        assert backfill.returncode == 0, backfill.stdout + backfill.stderr
        second = run_pipeline(
            data_dir, output_dir, "--train-steps", "12", "--mlflow-tracking-uri", server.url
        )
        yield server, output_dir, down, [first.stdout, backfill.stdout, second.stdout]
    finally:
        server.stop()


def mlmd(output_dir: Path):
    config = PipelineConfig(output_dir=str(output_dir))
    return lineage.connect(config.metadata_connection_config()), config.pipeline_name


def test_a_server_that_is_down_is_one_line_and_the_run_succeeds(logged):
    _, output_dir, down, (first, backfill, _) = logged
    store, pipeline = mlmd(output_dir)
    run_1 = lineage.run_ids(store, pipeline)[0]
    assert "Pipeline finished in" in first
    assert [line for line in first.splitlines() if "MLflow" in line] == [
        f"MLflow logging failed: cannot reach the tracking server {down} (connection refused); "
        f"log it later with: python -m lineage mlflow {run_1}"
    ]
    # The back-fill then logged that run from MLMD: the one run there was.
    assert backfill.splitlines() == [backfill.splitlines()[0]]
    assert backfill.startswith(f"MLflow: run {run_1} logged at ")


def test_each_pipeline_run_is_one_mlflow_run_whatever_is_logged_again(logged):
    server, output_dir, _, (_, _, second) = logged
    store, pipeline = mlmd(output_dir)
    runs = lineage.run_ids(store, pipeline)
    assert (
        second.strip().splitlines()[-1].startswith(f"MLflow: run {runs[1]} logged at {server.url}")
    )
    again = lineage_command(output_dir, "mlflow", "--all", "--tracking-uri", server.url)
    assert again.returncode == 0, again.stderr
    assert [line.split(" at ")[0] for line in again.stdout.splitlines()] == [
        f"MLflow: run {run} already logged" for run in runs
    ]
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    found = client.search_runs([experiment])
    assert sorted(r.data.tags[RUN_ID_TAG] for r in found) == sorted(runs)


def test_the_two_runs_compared_through_mlflow_match_mlmd(logged):
    from mlflow import MlflowClient

    server, output_dir, _, _ = logged
    store, pipeline = mlmd(output_dir)
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    by_run = {r.data.tags[RUN_ID_TAG]: r for r in client.search_runs([experiment])}
    for run_id, steps in zip(lineage.run_ids(store, pipeline), ("10", "12"), strict=True):
        mlflow_run = by_run[run_id]
        assert mlflow_run.info.status == "FINISHED"
        assert mlflow_run.data.params["Trainer.train_args.num_steps"] == steps
        [evaluation] = [
            a
            for r in lineage.run_executions(store, run_id)
            for a in lineage.run_outputs(store, r.execution.id).get("evaluation", [])
        ]
        overall = evaluations.slice_estimates(evaluation.uri)[names.OVERALL]
        metrics = mlflow_run.data.metrics
        assert [metrics["auc"], metrics["auc_low"], metrics["auc_high"]] == overall["auc"]
        assert metrics["example_count"] == overall["example_count"]
        assert any(key.startswith("auc.product_") for key in metrics)
        assert mlflow_run.data.tags["cfpb.blessed"] in ("yes", "no")
        assert mlflow_run.data.tags["cfpb.blessing_reason"]
        assert len(mlflow_run.data.tags["cfpb.input_sha256"]) == 64
        files = {a.path for a in client.list_artifacts(mlflow_run.info.run_id)}
        assert {"evaluation.json", "fairness.json"} <= files
    a, b = (by_run[r] for r in lineage.run_ids(store, pipeline))
    assert a.data.tags["cfpb.input_sha256"] == b.data.tags["cfpb.input_sha256"]  # same data
    assert a.data.metrics["auc"] != b.data.metrics["auc"]  # a different model


def test_pushed_versions_are_registered_under_their_serving_numbers(logged, tmp_path):
    from mlflow import MlflowClient

    server, output_dir, _, _ = logged
    client = MlflowClient(server.url)
    serving = sorted(
        int(p.name) for p in (output_dir / "serving_model").iterdir() if p.name.isdigit()
    )
    assert serving, "the pipeline pushed nothing"
    versions = client.search_model_versions(f"name = '{EXPERIMENT}'")
    assert sorted(int(v.tags["cfpb.serving_version"]) for v in versions) == serving
    model = client.get_registered_model(EXPERIMENT)
    newest = next(v for v in versions if v.tags["cfpb.serving_version"] == str(serving[-1]))
    assert model.aliases["champion"] == newest.version
    for number in serving:
        card = output_dir / "serving_model" / str(number) / "model_card.json"
        version = client.get_model_version_by_alias(EXPERIMENT, f"serving-{number}")
        downloaded = client.download_artifacts(version.run_id, "model_card.json", str(tmp_path))
        assert json.loads(Path(downloaded).read_text()) == json.loads(card.read_text())
    # The server's labels, as TF Serving's model config names them, become aliases.
    config = tmp_path / "models.config"
    base = output_dir / "serving_model"
    config.write_text(
        f"model_config_list {{ config {{ name: 'cfpb' base_path: '{base}' model_platform: "
        f"'tensorflow' version_labels {{ key: 'stable' value: {serving[0]} }} }} }}"
    )
    labelled = lineage_command(
        output_dir,
        "mlflow",
        "--all",
        "--tracking-uri",
        server.url,
        "--model-config-file",
        str(config),
    )
    assert labelled.returncode == 0, labelled.stderr
    aliases = client.get_registered_model(EXPERIMENT).aliases
    oldest = next(v for v in versions if v.tags["cfpb.serving_version"] == str(serving[0]))
    assert aliases["stable"] == aliases["champion"] == oldest.version


def test_the_ui_compares_both_runs_auc(logged, tmp_path):
    from mlflow import MlflowClient

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed for the UI check"
    server, _, _, _ = logged
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment])
    ids = json.dumps([r.info.run_id for r in runs]).replace(" ", "")
    page = (
        f"{server.url}/#/compare-runs?runs={urllib.parse.quote(ids)}"
        f"&experiments={urllib.parse.quote(json.dumps([experiment]))}"
    )
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=30000",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page],
        capture_output=True, text=True, timeout=180,
    ).stdout  # fmt: skip
    for run in runs:
        assert run.data.tags[RUN_ID_TAG] in dom, dom[-2000:]
        shown = f"{run.data.metrics['auc']:.5f}"  # as the parallel-coordinates chart rounds
        assert shown in dom, (shown, dom[-2000:])
    assert "auc" in dom
