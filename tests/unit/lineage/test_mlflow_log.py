"""MLflow logging from a small real MLMD store into a real MLflow store (SQLite, no server):
names MLflow accepts, once per pipeline run, nothing half-logged, a server that is down."""

from __future__ import annotations

import socket
import time

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.utils.validation import _validate_metric_name, _validate_param_name
from support.mlmd_builder import PIPELINE, StoreBuilder, evaluation_slices, pipeline_run

from lineage import command, mlflow_log
from lineage.mlflow_record import RUN_ID_TAG, evaluation_metrics, metric_names, run_record
from pipeline.config import PipelineConfig


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    builder = StoreBuilder(folder)
    pipeline_run(builder, "run-1", trainer_fails=False)
    pipeline_run(builder, "run-2", trainer_fails=True)
    return folder, builder.store


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def active_runs(tracking_uri: str, run_id: str) -> list:
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(PIPELINE)
    return client.search_runs([experiment.experiment_id], f"tags.`{RUN_ID_TAG}` = '{run_id}'")


def test_metric_names_are_names_mlflow_accepts():
    slices = evaluation_slices()
    found = evaluation_metrics(slices)
    for name in found:
        _validate_metric_name(name)  # raises on a name MLflow refuses
    overall = slices["Overall"]
    assert (found["auc"], found["auc_low"], found["auc_high"]) == tuple(overall["auc"])
    older = slices["tags: Older American"]["auc"]
    assert found["auc.tags_Older_American"] == older[0]
    assert found["auc_high.tags_Older_American"] == older[2]
    assert found["example_count"] == overall["example_count"]
    untagged = slices["tags: "]["example_count"]  # complaints without a tag: "(none)"
    assert found["example_count.tags_none"] == untagged
    assert "precision_at_0.3" in found
    nan_metrics = [m for m, v in overall.items() if isinstance(v, list) and v[0] != v[0]]
    assert all(m not in found for m in nan_metrics)  # undefined values are left out


def test_slices_that_clean_to_the_same_name_stay_apart():
    slices = ["Overall", "product: Credit card/prepaid", "product: Credit card prepaid"]
    named = metric_names(slices)
    assert len(set(named.values())) == 2
    assert all(n.startswith("product_Credit_card_prepaid") for n in named.values())


def test_the_record_holds_params_metrics_and_ids_from_mlmd(built):
    _, store = built
    record = run_record(store, PIPELINE, "run-1")
    for key in record.params:
        _validate_param_name(key)
    assert record.params["Trainer.train_args.num_steps"] == "60"
    assert record.params["Trainer.train_args.splits.0"] == "train"
    assert record.tags["cfpb.blessed"] == "yes" and record.metrics["blessed"] == 1.0
    assert record.tags["cfpb.input_sha256"] and record.tags["cfpb.model_id"].isdigit()
    assert record.mlflow_status == "FINISHED"
    assert run_record(store, PIPELINE, "run-2").mlflow_status == "FAILED"


def test_logging_a_run_twice_logs_it_once(built, tracking_uri):
    _, store = built
    first = mlflow_log.log_run(store, "run-1", tracking_uri, pipeline_name=PIPELINE)
    again = mlflow_log.log_run(store, "run-1", tracking_uri, pipeline_name=PIPELINE)
    assert first.created and not again.created
    assert again.mlflow_run_id == first.mlflow_run_id
    [run] = active_runs(tracking_uri, "run-1")
    assert run.info.status == "FINISHED" and run.data.params["Trainer.train_args.num_steps"] == "60"
    assert run.data.metrics["auc"] == evaluation_slices()["Overall"]["auc"][0]
    artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(run.info.run_id)}
    assert artifacts == {"evaluation.json"}  # no push, no model card; no fairness report here


def test_an_interrupted_attempt_is_replaced_not_kept(built, tracking_uri):
    _, store = built
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(PIPELINE).experiment_id
    leftover = client.create_run(experiment, tags={RUN_ID_TAG: "run-2"}).info.run_id
    logged = mlflow_log.log_run(store, "run-2", tracking_uri, pipeline_name=PIPELINE)
    [run] = active_runs(tracking_uri, "run-2")
    assert run.info.run_id == logged.mlflow_run_id != leftover
    assert run.info.status == "FAILED"  # the pipeline run's own status
    assert client.get_run(leftover).info.lifecycle_stage == "deleted"


def test_a_failure_while_logging_leaves_no_run(built, tmp_path):
    _, store = built
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri)
    # Files cannot be written under /proc, even by root: log_artifacts fails after create_run.
    client.create_experiment(PIPELINE, artifact_location="file:///proc/cfpb-no-artifacts")
    with pytest.raises(mlflow_log.MlflowLogError):
        mlflow_log.log_run(store, "run-1", tracking_uri, pipeline_name=PIPELINE)
    assert active_runs(tracking_uri, "run-1") == []
    experiment = client.get_experiment_by_name(PIPELINE).experiment_id
    [deleted] = client.search_runs([experiment], run_view_type=ViewType.DELETED_ONLY)
    assert deleted.data.tags[RUN_ID_TAG] == "run-1"  # it was created, then taken back


def test_a_server_that_is_down_is_one_line_and_nothing_else(built):
    folder, store = built
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = PipelineConfig(output_dir=str(folder), mlflow_tracking_uri=f"http://127.0.0.1:{port}")
    started = time.monotonic()
    line = mlflow_log.log_after_run(config, store, "run-1")
    assert time.monotonic() - started < 30
    assert line == (
        f"MLflow logging failed: cannot reach the tracking server http://127.0.0.1:{port} "
        "(connection refused); log it later with: python -m lineage mlflow run-1"
    )


def test_logging_is_off_unless_asked(built):
    folder, store = built
    assert mlflow_log.log_after_run(PipelineConfig(output_dir=str(folder)), store, "run-1") is None


def test_the_backfill_command_logs_every_run_once(built, tmp_path, capsys):
    folder, _ = built
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ask = ["--output-dir", str(folder), "mlflow", "--all", "--tracking-uri", uri]
    assert command.main(ask) == 0
    first = capsys.readouterr().out.splitlines()
    assert [line.split(" (run ")[0] for line in first] == [
        f"MLflow: run run-1 logged at {uri}",
        f"MLflow: run run-2 logged at {uri}",
    ]
    assert command.main(ask[:3] + ["#1", "--tracking-uri", uri]) == 0
    again = capsys.readouterr().out
    assert again.startswith(f"MLflow: run run-1 already logged at {uri}")
    assert len(active_runs(uri, "run-1")) == 1


def test_a_model_config_file_that_is_not_one_is_one_line(built, tmp_path, capsys):
    folder, _ = built
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { name: 'cfpb' version_labels { key: 1 } } }")
    code = command.main(
        ["--output-dir", str(folder), "mlflow", "--all", "--tracking-uri",
         f"sqlite:///{tmp_path / 'mlflow.db'}", "--model-config-file", str(config)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"error: --model-config-file {config}: ")
