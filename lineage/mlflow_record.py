"""One pipeline run as MLflow will show it, read from MLMD only: params, metrics, tags, files.

MLMD stays the source of truth; this module only reads it (no MLflow import), and
lineage/mlflow_log.py writes what it returns. Names follow what MLflow accepts: params and
metrics use letters, digits, '_', '.', '-' and '/' only (docs/mlflow.md, "Names").
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field

import ml_metadata as mlmd

from lineage.diff import _settings_of
from lineage.queries import run_summary
from pipeline import names
from pipeline.metadata import artifacts, evaluations
from pipeline.metadata.store import (
    custom_property,
    producer,
    pushed_destination,
    run_inputs,
    run_outputs,
)

TAG = "cfpb."  # prefix of the tags this project sets; the pipeline run id tag finds a run again
RUN_ID_TAG = TAG + "pipeline_run_id"
MAX_PARAM_VALUE = 6000  # MLflow's limits (mlflow.utils.validation)
MAX_TAG_VALUE = 8000
MAX_KEY = 250
# MLflow's run status for the pipeline run's (lineage.queries.RUN_STATUS names).
MLFLOW_STATUS = {"COMPLETE": "FINISHED", "FAILED": "FAILED", "INTERRUPTED": "KILLED"}
INTERVAL_SUFFIXES = ("", "_low", "_high")  # [value, low, high] of a 95% interval


@dataclass(frozen=True)
class Push:
    """A model version the Pusher wrote into the serving folder."""

    serving_version: int  # the version folder's number, as the model server serves it
    destination: str
    pushed_model_id: int
    model_id: int | None


@dataclass
class RunRecord:
    """What one MLflow run holds for one pipeline run."""

    pipeline_name: str
    run_id: str
    status: str  # COMPLETE, FAILED, INTERRUPTED or RUNNING (the lineage command's)
    started_ms: int
    ended_ms: int
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # MLflow artifact path -> source file
    model_dir: str | None = None  # the pushed SavedModel folder, logged as 'model/'
    pushes: list[Push] = field(default_factory=list)
    evaluated_ms: int | None = None  # when the Evaluator finished: the metrics' timestamp

    @property
    def mlflow_status(self) -> str:
        return MLFLOW_STATUS.get(self.status, "FAILED")


def key_name(text: str) -> str:
    """A param or metric key MLflow accepts: '[0]' becomes '.0', '@' 'at', others '_'."""
    text = re.sub(r"\[(\d+)\]", r".\1", text).replace("@", "_at_")
    return re.sub(r"[^A-Za-z0-9_.\-/]+", "_", text).strip("_")[:MAX_KEY]


def slice_name(name: str) -> str:
    """'tags: Older American' -> 'tags_Older_American', 'tags: ' (no tag) -> 'tags_none':
    the suffix of per-slice metrics."""
    feature, _, value = name.partition(": ")
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{feature}: {value or 'none'}").strip("_")


def metric_names(slices: list[str]) -> dict[str, str]:
    """Each slice's metric suffix; two slices that clean to the same text get a short hash."""
    cleaned = {name: slice_name(name) for name in slices if name != names.OVERALL}
    counts: dict[str, int] = {}
    for text in cleaned.values():
        counts[text] = counts.get(text, 0) + 1
    return {
        name: text
        if counts[text] == 1
        else f"{text}_{hashlib.sha256(name.encode()).hexdigest()[:6]}"
        for name, text in cleaned.items()
    }


def evaluation_metrics(slices: dict[str, dict], difference: dict | None = None) -> dict:
    """Every metric of every slice with its interval: auc, auc_low, auc_high overall;
    auc.tags_Older_American per slice. Undefined values (NaN) are left out."""
    suffixes = metric_names(list(slices))
    found: dict[str, float] = {}

    def put(name: str, value) -> None:
        if isinstance(value, int | float) and math.isfinite(value):
            found[name] = float(value)

    for slice_key, by_metric in slices.items():
        tail = "" if slice_key == names.OVERALL else f".{suffixes[slice_key]}"
        for metric, value in by_metric.items():
            base = key_name(metric)
            if not isinstance(value, list):  # example_count
                put(base + tail, value)
                continue
            for suffix, number in zip(INTERVAL_SUFFIXES, value, strict=False):
                put(f"{base}{suffix}{tail}", number)
    # The paired difference to the last blessed model on the same rows (what the blessing read).
    for metric, value in ((difference or {}).get(names.OVERALL) or {}).items():
        if isinstance(value, list):
            for suffix, number in zip(INTERVAL_SUFFIXES, value, strict=False):
                put(f"{key_name(metric)}_vs_baseline{suffix}", number)
    return found


def _param_value(value) -> str:
    return ("" if value is None else str(value))[:MAX_PARAM_VALUE]


def settings_params(execution, node: str) -> dict[str, str]:
    """An execution's properties as params, JSON ones flattened to their leaves
    ('Trainer.train_args.num_steps'), as lineage's diff compares them."""
    params: dict[str, str] = {}

    def walk(value, path: str) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list) and value:
            for index, item in enumerate(value):
                walk(item, f"{path}.{index}")
        elif value is not None:
            params[key_name(path)] = _param_value(value)

    for name in sorted(set(execution.custom_properties) | set(execution.properties)):
        value = custom_property(execution, name)
        if value is None:  # the notebook's launcher keeps them as properties
            value = custom_property_of(execution.properties, name)
        if isinstance(value, str) and value[:1] in "[{":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        walk(value, f"{node}.{name}")
    return params


def custom_property_of(properties, name: str):
    value = properties[name]
    which = value.WhichOneof("value")
    return getattr(value, which) if which else None


def run_record(store: mlmd.MetadataStore, pipeline_name: str, run_id: str) -> RunRecord:
    """The run's configuration, evaluation, blessing, push and MLMD ids, from MLMD only."""
    summary = run_summary(store, run_id)
    record = RunRecord(
        pipeline_name=pipeline_name,
        run_id=run_id,
        status=summary.status,
        started_ms=summary.started_ms,
        ended_ms=max(
            (r.execution.last_update_time_since_epoch for r in summary.executions),
            default=summary.started_ms,
        ),
    )
    outputs: dict[str, dict] = {}
    for item in summary.executions:
        found = run_outputs(store, item.execution.id)
        outputs[item.node_id] = found
        settings = _settings_of(store, item.execution, found)
        record.params.update(settings_params(settings, item.node_id))

    def output(node: str, key: str):
        items = outputs.get(node, {}).get(key, [])
        return items[0] if items else None

    tags = {
        RUN_ID_TAG: run_id,
        TAG + "pipeline_name": pipeline_name,
        TAG + "run_status": summary.status,
        TAG + "executed": ", ".join(summary.executed) or "-",
        TAG + "cached": ", ".join(summary.cached) or "-",
        "mlflow.runName": run_id,
    }
    examples = output(names.EXAMPLE_GEN, "examples")
    if examples is not None:
        tags[TAG + "examples_id"] = str(examples.id)
        tags[TAG + "input_sha256"] = str(custom_property(examples, "input_sha256") or "")
    statistics = output(names.STATISTICS_GEN, "statistics")
    if statistics is not None:
        for split, count in (_readable(artifacts.split_counts, statistics.uri) or {}).items():
            record.metrics[f"examples.{key_name(split)}"] = float(count)
    _trainer_part(store, record, tags, outputs)
    _evaluator_part(store, record, tags, outputs)
    _pusher_part(record, tags, output(names.PUSHER, "pushed_model"), summary)
    record.tags = {key: value[:MAX_TAG_VALUE] for key, value in tags.items()}
    return record


def _readable(read, uri: str):
    """What read(uri) returns; None when the artifact's files are gone (a cleaned-up root)."""
    try:
        return read(uri)
    except (OSError, ValueError, KeyError):  # TFX's NotFoundError is an OSError
        return None


def _trainer_part(store, record: RunRecord, tags: dict, outputs: dict) -> None:
    model = (outputs.get(names.TRAINER, {}).get("model") or [None])[0]
    if model is None:
        return
    tags[TAG + "model_id"] = str(model.id)
    tags[TAG + "git_revision"] = str(custom_property(model, "git_revision") or "")
    threshold = custom_property(model, "decision_threshold")
    if threshold is not None:
        record.metrics["decision_threshold"] = float(threshold)
    _, trainer = producer(store, model.id)  # a cached Trainer: the run that trained it
    hyperparameters = run_inputs(store, trainer.id).get("hyperparameters", [])
    if hyperparameters:
        chosen = _readable(artifacts.hyperparameters, hyperparameters[0].uri) or {}
        for key, value in chosen.items():
            record.params[key_name(f"hyperparameters.{key}")] = _param_value(value)
        tags[TAG + "hyperparameters_id"] = str(hyperparameters[0].id)


def _evaluator_part(store, record: RunRecord, tags: dict, outputs: dict) -> None:
    found = outputs.get(names.EVALUATOR, {})
    evaluation, blessing = (found.get(key, [None])[0] for key in ("evaluation", "blessing"))
    if blessing is not None:
        blessed = custom_property(blessing, "blessed") == 1
        tags[TAG + "blessed"] = "yes" if blessed else "no"
        tags[TAG + "blessing_id"] = str(blessing.id)
        record.metrics["blessed"] = 1.0 if blessed else 0.0
    if evaluation is None:
        return
    tags[TAG + "evaluation_id"] = str(evaluation.id)
    record.evaluated_ms = evaluation.create_time_since_epoch
    from tfx.dsl.io import fileio

    loaded = _readable(evaluations.load_evaluation, evaluation.uri)
    if loaded is None and not fileio.exists(evaluation.uri):
        return  # the folder is gone: the tags say what MLMD knows
    if loaded is None:  # written by TFMA: point values only
        record.metrics.update(evaluation_metrics(evaluations.slice_estimates(evaluation.uri)))
        reasons, refusals = [], evaluations.refusals(evaluation.uri)
    else:
        record.metrics.update(
            evaluation_metrics(loaded.slices, (loaded.baseline or {}).get("difference"))
        )
        reasons, refusals = loaded.reasons, loaded.refusals
        record.files["evaluation.json"] = os.path.join(evaluation.uri, evaluations.EVALUATION_FILE)
    from pipeline.components import fairness

    report = fairness.load_report(evaluation.uri)
    if report is not None:
        refusals = [*refusals, *report.refusals]
        record.files["fairness.json"] = os.path.join(evaluation.uri, fairness.FAIRNESS_FILE)
    blessed = tags.get(TAG + "blessed") == "yes"
    tags[TAG + "blessing_reason"] = "; ".join(reasons if blessed else refusals or reasons)
    # The run's description in MLflow's UI: the decision and what it weighed.
    verdict = f"Pipeline run {record.run_id}: {record.status.lower()}, blessed "
    verdict += "yes." if blessed else "no."
    lines = reasons if blessed else refusals
    tags["mlflow.note.content"] = "\n".join([verdict, *(f"- {line}" for line in lines)])


def _pusher_part(record: RunRecord, tags: dict, pushed, summary) -> None:
    destination = pushed_destination(pushed) if pushed is not None else None
    tags[TAG + "pushed"] = (
        "yes" if summary.pushed_to else "reused from the cache" if summary.reused_push else "no"
    )
    if destination is None:
        return
    from pipeline.components import model_card

    version = os.path.basename(destination.rstrip("/"))
    model_id = tags.get(TAG + "model_id")
    push = Push(
        serving_version=int(version) if version.isdigit() else 0,
        destination=destination,
        pushed_model_id=pushed.id,
        model_id=int(model_id) if model_id else None,
    )
    record.pushes.append(push)
    tags[TAG + "pushed_model_id"] = str(pushed.id)
    tags[TAG + "serving_version"] = version
    tags[TAG + "pushed_to"] = destination
    for name in (model_card.CARD_HTML, model_card.CARD_JSON):
        record.files[name] = os.path.join(destination, name)
    if "://" not in destination and os.path.isdir(destination):
        record.model_dir = destination
