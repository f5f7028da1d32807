"""Pipeline runs in MLflow: one MLflow run per pipeline run, pushed versions in its registry.

MLflow is a view of MLMD, written after a run (runners/local_run.py with
--mlflow-tracking-uri) or later for an existing store (python -m lineage mlflow). What a run
holds comes from lineage/mlflow_record.py; here it is written:

- the MLflow run is found again by its tag cfpb.pipeline_run_id: logging a run twice logs it
  once. It is marked complete (tag cfpb.logged) last, so a run a failure interrupted is
  deleted and logged anew, never shown half-written;
- each pushed version is registered under the pipeline's name, tagged and aliased with its
  serving version number (serving-1796596546), and aliases mirror the server's labels:
  champion = the version labelled stable (else the newest push), challenger = canary.

docs/mlflow.md says which names MLflow shows and how to compare runs.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lineage.mlflow_record import RUN_ID_TAG, TAG, RunRecord, run_record

LOCAL = "local"  # --mlflow-tracking-uri local: SQLite and files under <output-dir>/mlruns
LOGGED_TAG = TAG + "logged"  # set last: a run without it is an interrupted attempt
VERSION_TAG = TAG + "serving_version"
# Server labels and the MLflow aliases that mirror them (the label's own name is set too).
LABEL_ALIASES = {"stable": "champion", "canary": "challenger"}
FAILED = "MLflow logging failed"


class MlflowLogError(RuntimeError):
    """MLflow could not be written: one line saying what and where."""


@dataclass
class Logged:
    """What one log_run call did."""

    run_id: str
    mlflow_run_id: str
    experiment_id: str
    created: bool  # False: it was already logged
    registered: list[tuple[str, int]] = field(default_factory=list)  # (MLflow version, serving)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> MLflow version

    def line(self, tracking_uri: str) -> str:
        what = "logged" if self.created else "already logged"
        text = f"MLflow: run {self.run_id} {what} at {tracking_uri} (run {self.mlflow_run_id})"
        for version, serving in self.registered:
            text += f"; registered version {version} = serving version {serving}"
        if "champion" in self.aliases:
            text += f"; champion = version {self.aliases['champion']}"
        return text


def tracking_uri_for(value: str, output_dir: str) -> str:
    """'local' as the SQLite store under <output-dir>/mlruns; any other URI as given."""
    if value != LOCAL:
        return value
    if "://" in output_dir:
        raise MlflowLogError(
            f"--mlflow-tracking-uri local keeps MLflow under --output-dir, but {output_dir} is "
            "not a local folder: give a tracking server's URI (http://HOST:5000)"
        )
    folder = Path(output_dir).resolve() / "mlruns"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def client_for(tracking_uri: str):
    """An MlflowClient, after checking that a tracking server answers at all."""
    # A server that is down: MLflow would retry for minutes; a user's own settings win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # our line says it
    if tracking_uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(tracking_uri.rstrip("/") + "/health", timeout=10)
        except requests.RequestException as error:
            reason = (
                "no answer in 10 s"
                if isinstance(error, requests.Timeout)
                else "connection refused"
                if isinstance(error, requests.ConnectionError)
                else one_line(error)
            )
            raise MlflowLogError(
                f"cannot reach the tracking server {tracking_uri} ({reason})"
            ) from None
    from mlflow import MlflowClient

    for name in ("mlflow", "alembic"):  # table creation notices would bury the one line
        logging.getLogger(name).setLevel(logging.ERROR)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _experiment_id(client, name: str, tracking_uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:///"):  # files beside the database, not in the cwd
        database = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
        location = (database.parent / "artifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def _logged_run(client, experiment_id: str, run_id: str):
    """The complete MLflow run of this pipeline run; interrupted attempts are deleted."""
    from mlflow.entities import ViewType

    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'",
        run_view_type=ViewType.ACTIVE_ONLY,
    )
    complete = [r for r in found if r.data.tags.get(LOGGED_TAG) == "complete"]
    keep = complete[0].info.run_id if complete else None
    for attempt in found:
        if attempt.info.run_id != keep:
            client.delete_run(attempt.info.run_id)
    return complete[0] if complete else None


def _registered(client, model_name: str) -> dict[int, object]:
    """The model's registered versions by serving version number."""
    versions = client.search_model_versions(f"name = '{model_name}'")
    return {int(v.tags[VERSION_TAG]): v for v in versions if v.tags.get(VERSION_TAG, "").isdigit()}


def _stage_files(record: RunRecord, folder: Path) -> None:
    """The run's files (model card, fairness report, evaluation) in one folder; any missing
    (a cleaned pipeline root) are left out."""
    from tfx.dsl.io import fileio

    for name, source in record.files.items():
        if fileio.exists(source):
            fileio.copy(source, str(folder / name), overwrite=True)


def _log_new_run(client, experiment_id: str, record: RunRecord, model_dir: str | None) -> str:
    """Create, fill and close the MLflow run; deleted again if any step fails."""
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(
        experiment_id,
        start_time=record.started_ms or None,
        tags={RUN_ID_TAG: record.run_id, "mlflow.runName": record.run_id},
    )
    mlflow_run_id = run.info.run_id
    try:
        stamp = record.evaluated_ms or record.ended_ms
        client.log_batch(
            mlflow_run_id,
            metrics=[Metric(k, v, stamp, 0) for k, v in sorted(record.metrics.items())],
            params=[Param(k, v) for k, v in sorted(record.params.items())],
            tags=[RunTag(k, v) for k, v in sorted(record.tags.items())],
        )
        with tempfile.TemporaryDirectory(prefix="cfpb-mlflow-") as folder:
            _stage_files(record, Path(folder))
            if any(Path(folder).iterdir()):
                client.log_artifacts(mlflow_run_id, folder)
        if model_dir:
            client.log_artifacts(mlflow_run_id, model_dir, "model")
        client.set_tag(mlflow_run_id, LOGGED_TAG, "complete")
        client.set_terminated(mlflow_run_id, record.mlflow_status, end_time=record.ended_ms)
    except BaseException:
        try:  # nothing half-logged: the attempt goes (a later call deletes it otherwise)
            client.delete_run(mlflow_run_id)
        except Exception:  # noqa: BLE001 (the server may be the reason; the first error counts)
            pass
        raise
    return mlflow_run_id


def _ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:  # RESOURCE_DOES_NOT_EXIST
        client.create_registered_model(name, description="Pushed versions of the CFPB pipeline.")


def _alias(text: str) -> str | None:
    name = re.sub(r"[^\w-]+", "-", text).strip("-")
    return None if not name or name.lower() == "latest" or re.fullmatch(r"[vV]\d+", name) else name


def server_labels(model_config_file: str) -> dict[str, int]:
    """Version labels of the models in TF Serving's --model_config_file (text format)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    try:
        text = Path(model_config_file).read_text(encoding="utf-8")
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except (OSError, UnicodeDecodeError, text_format.ParseError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MlflowLogError(f"--model-config-file {model_config_file}: {reason}") from None
    labels: dict[str, int] = {}
    for model in config.model_config_list.config:
        labels.update(model.version_labels)
    return labels


def _set_aliases(client, model_name: str, labels: dict[str, int] | None) -> dict[str, str]:
    """serving-<V> per version, champion/challenger and the labels themselves."""
    registered = _registered(client, model_name)
    if not registered:
        return {}
    wanted = {f"serving-{serving}": v.version for serving, v in registered.items()}
    wanted["champion"] = registered[max(registered)].version  # the newest push
    for label, serving in (labels or {}).items():
        if serving not in registered:
            continue  # a version this store never pushed
        for alias in (_alias(label), LABEL_ALIASES.get(label)):
            if alias:
                wanted[alias] = registered[serving].version
    current = client.get_registered_model(model_name).aliases or {}
    for alias, version in sorted(wanted.items()):
        if str(current.get(alias)) != str(version):
            client.set_registered_model_alias(model_name, alias, version)
    return {alias: str(version) for alias, version in wanted.items()}


def log_run(
    store,
    run_id: str,
    tracking_uri: str,
    *,
    pipeline_name: str = "cfpb-dispute",
    experiment: str | None = None,
    registered_model: str | None = None,
    labels: dict[str, int] | None = None,
) -> Logged:
    """Log one pipeline run from MLMD to MLflow; again: nothing new, aliases brought up to date."""
    record = run_record(store, pipeline_name, run_id)
    if record.status == "RUNNING":
        raise MlflowLogError(f"run {run_id} is still running: log it once it has finished")
    client = client_for(tracking_uri)
    model_name = registered_model or pipeline_name
    try:
        experiment_id = _experiment_id(client, experiment or pipeline_name, tracking_uri)
        existing = _logged_run(client, experiment_id, run_id)
        registered = _registered(client, model_name) if record.pushes else {}
        local_pushes = [p for p in record.pushes if "://" not in p.destination]
        unregistered = [p for p in local_pushes if p.serving_version not in registered]
        if existing is None:
            model_dir = record.model_dir if unregistered else None
            mlflow_run_id, created = _log_new_run(client, experiment_id, record, model_dir), True
        else:
            mlflow_run_id, created = existing.info.run_id, False
        result = Logged(run_id, mlflow_run_id, experiment_id, created)
        for push in record.pushes:
            if push.serving_version in registered or push.serving_version == 0:
                continue
            remote = "://" in push.destination
            source = push.destination if remote else f"runs:/{mlflow_run_id}/model"
            _ensure_registered_model(client, model_name)
            version = client.create_model_version(
                model_name,
                source,
                run_id=mlflow_run_id,
                tags={
                    VERSION_TAG: str(push.serving_version),
                    TAG + "pushed_model_id": str(push.pushed_model_id),
                    TAG + "model_id": str(push.model_id),
                    RUN_ID_TAG: run_id,
                    TAG + "pushed_to": push.destination,
                },
                description=f"Serving version {push.serving_version}, pushed to "
                f"{push.destination} by pipeline run {run_id}.",
            )
            result.registered.append((version.version, push.serving_version))
        if record.pushes or labels:
            result.aliases = _set_aliases(client, model_name, labels)
    except MlflowLogError:
        raise
    except Exception as error:  # noqa: BLE001 (MLflow's and requests' errors, as one line)
        raise MlflowLogError(one_line(error)) from None
    return result


def one_line(error: BaseException) -> str:
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text[:300]


def log_after_run(config, store, run_id: str) -> str | None:
    """The runner's call after a finished run: the one line to print (None when off).

    Never raises: the pipeline run has succeeded whatever MLflow says.
    """
    if not config.mlflow_tracking_uri:
        return None
    try:
        tracking_uri = tracking_uri_for(config.mlflow_tracking_uri, str(config.output_dir))
        logged = log_run(store, run_id, tracking_uri, pipeline_name=config.pipeline_name)
    except MlflowLogError as error:
        return f"{FAILED}: {error}; log it later with: python -m lineage mlflow {run_id}"
    except Exception as error:  # noqa: BLE001 (the run succeeded; say why in one line)
        return f"{FAILED}: {type(error).__name__}: {one_line(error)}"
    return logged.line(tracking_uri)
