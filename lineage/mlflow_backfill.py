"""python -m lineage mlflow: log existing pipeline runs from MLMD to MLflow.

For runs that were not logged when they finished: a per-component Airflow DAG, a run made
without --mlflow-tracking-uri, or one whose tracking server was down. Logging a run again
changes nothing but the registry's aliases (lineage/mlflow_log.py).
"""

from __future__ import annotations

import argparse
import os

from lineage.mlflow_log import FAILED, LOCAL, MlflowLogError, log_run, server_labels
from lineage.mlflow_log import tracking_uri_for as resolve_tracking_uri
from pipeline.metadata.store import LineageError, resolve_run, run_ids


def add_mlflow_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("run", nargs="?", help="run id, or #N for the N-th run listed by 'runs'")
    which.add_argument("--all", action="store_true", help="every finished run, oldest first")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI") or LOCAL,
        help="an MLflow tracking server (http://HOST:5000), a sqlite:/// URI, or 'local' for "
        "the store under --output-dir/mlruns (default: $MLFLOW_TRACKING_URI, else %(default)s)",
    )
    parser.add_argument(
        "--experiment", help="MLflow experiment (default: the pipeline's name, cfpb-dispute)"
    )
    parser.add_argument(
        "--registered-model",
        help="registered model that pushed versions join (default: the pipeline's name)",
    )
    parser.add_argument(
        "--model-config-file",
        help="the model server's --model_config_file: its version labels become aliases "
        "(stable: champion, canary: challenger)",
    )


def backfill(store, args) -> str | list:
    """Log one run, or every finished run, from MLMD; one line per run."""
    if args.all:
        runs = run_ids(store, args.pipeline_name)
        if not runs:
            raise LineageError(f"pipeline {args.pipeline_name} has no runs in this store yet")
    else:
        runs = [resolve_run(store, args.pipeline_name, args.run)]
    try:
        tracking_uri = resolve_tracking_uri(args.tracking_uri, args.output_dir)
        labels = server_labels(args.model_config_file) if args.model_config_file else None
    except MlflowLogError as error:
        raise LineageError(str(error)) from None
    lines, answers = [], []
    for run_id in runs:
        try:
            logged = log_run(
                store,
                run_id,
                tracking_uri,
                pipeline_name=args.pipeline_name,
                experiment=args.experiment,
                registered_model=args.registered_model,
                labels=labels,
            )
        except MlflowLogError as error:
            if args.all and "still running" in str(error):
                lines.append(f"MLflow: run {run_id} is still running: not logged")
                continue
            raise LineageError(f"{FAILED} for run {run_id}: {error}") from None
        lines.append(logged.line(tracking_uri))
        answers.append({**vars(logged), "tracking_uri": tracking_uri})
    return answers if args.json else "\n".join(lines)
