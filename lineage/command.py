"""Ask the MLMD store where a model came from, what a data set trained, and what changed.

    python -m lineage runs
    python -m lineage trace latest-pushed
    python -m lineage uses data/sample
    python -m lineage diff '#2' '#3'
    python -m lineage export -o lineage.svg
    python -m lineage mlflow --all --tracking-uri http://127.0.0.1:5000
    python -m lineage openlineage --all -o events.jsonl

Tables for people; --json for machines. The store is the one the runners use: SQLite under
--output-dir, or MySQL with --mysql-host (password from $MLMD_MYSQL_PASSWORD).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")  # dependencies' notices would bury the answer

from cli.bounds import add_number, count  # noqa: E402
from cli.tables import format_table  # noqa: E402
from lineage import queries  # noqa: E402
from lineage.diff import diff as diff_runs  # noqa: E402
from lineage.export import EXPORT_FORMATS, export  # noqa: E402
from lineage.mlflow_backfill import add_mlflow_arguments, backfill  # noqa: E402
from lineage.openlineage_export import add_openlineage_arguments, emit_events  # noqa: E402
from pipeline import preflight  # noqa: E402
from pipeline.components.fairness import estimate_text  # noqa: E402
from pipeline.config import PipelineConfig, add_config_arguments  # noqa: E402
from pipeline.metadata import decisions  # noqa: E402
from pipeline.metadata.store import (  # noqa: E402
    LineageError,
    connect,
    pipeline_names,
    resolve_run,
)

STORE_FIELDS = (
    "output_dir",
    "pipeline_name",
    "mysql_host",
    "mysql_port",
    "mysql_database",
    "mysql_user",
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lineage",
        description="Query the pipeline's ML Metadata lineage.",
    )
    # The runners' own flags for the store, so the same values find the same store.
    add_config_arguments(parser.add_argument_group("store (as given to the runner)"), STORE_FIELDS)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("runs", help="the pipeline's runs: status, cached/executed, push")
    trace = commands.add_parser("trace", help="everything upstream of a model")
    trace.add_argument("model", help="'latest-pushed', or a Model or PushedModel artifact id")
    uses = commands.add_parser("uses", help="models trained from some data")
    uses.add_argument("data", help="a data folder or file ExampleGen read, or an Examples id")
    diff = commands.add_parser("diff", help="what differs between two runs")
    diff.add_argument("run_a", help="run id, or #N for the N-th run listed by 'runs'")
    diff.add_argument("run_b")
    add_number(
        diff,
        "--slices",
        bounds=count(0, 10_000),
        default=10,
        help="slices shown, largest AUC change first (default: %(default)s)",
    )
    export = commands.add_parser("export", help="the whole lineage graph as JSON, DOT, SVG, PNG")
    export.add_argument(
        "-o",
        "--output",
        required=True,
        help=f"file to write; its suffix picks the format ({', '.join(EXPORT_FORMATS)})",
    )
    mlflow = commands.add_parser("mlflow", help="log runs to MLflow from MLMD (docs/mlflow.md)")
    add_mlflow_arguments(mlflow)
    openlineage = commands.add_parser(
        "openlineage", help="runs as OpenLineage events (docs/openlineage.md)"
    )
    add_openlineage_arguments(openlineage)
    return parser


def open_store(args: argparse.Namespace):
    config = PipelineConfig(**{name: getattr(args, name) for name in STORE_FIELDS})
    path = config.metadata_path
    if not args.mysql_host and not (path.is_file() and path.stat().st_size > 0):
        raise LineageError(
            f"no MLMD store at {path}{' (the file is empty)' if path.is_file() else ''}: run the "
            "pipeline first (./run.sh), or point --output-dir at a runner's output folder"
        )
    if problems := preflight.store_problems(config):  # a MySQL store that cannot answer
        raise LineageError(problems[0])
    connection = config.metadata_connection_config()
    if connection.HasField("sqlite"):  # a question never writes: no schema into a stray file
        connection.sqlite.connection_mode = connection.sqlite.READONLY
    try:
        return connect(connection)
    except Exception as error:  # noqa: BLE001 (MLMD raises its own status errors)
        raise LineageError(f"cannot open the MLMD store: {error}") from None


def when(milliseconds: int) -> str:
    return datetime.datetime.fromtimestamp(milliseconds / 1000).strftime("%Y-%m-%d %H:%M:%S")


def show_runs(store, args) -> str | dict:
    summaries = queries.run_summaries(store, args.pipeline_name)
    if not summaries:
        names = ", ".join(pipeline_names(store)) or "none"
        raise LineageError(f"no runs of pipeline {args.pipeline_name} (pipelines: {names})")
    if args.json:
        return [s.as_json() for s in summaries]
    rows = [
        [
            f"#{n}",
            s.run_id,
            when(s.started_ms),
            s.status,
            ", ".join(s.executed) or "-",
            str(len(s.cached)),
            s.pushed_to or "-",
        ]
        for n, s in enumerate(summaries, start=1)
    ]
    return format_table(["#", "run", "started", "status", "executed", "cached", "pushed"], rows)


def show_trace(store, args) -> str | dict:
    found = queries.trace(store, args.model)
    if args.json:
        return found
    model, training, examples = found["model"], found["training"], found["examples"]
    lines = [
        f"Model {model['id']}  {model['uri']}",
        f"  trained in run {model['trained_in_run']}, code {model['git_revision']}",
        "  packages: " + ", ".join(f"{k} {v}" for k, v in model["package_versions"].items()),
    ]
    for pushed in found["pushed"]:
        lines.append(f"Pushed (artifact {pushed['id']}) to {pushed['destination']}")
        lines += decisions.decision_lines(pushed["rollout_decisions"])
    evaluation = found["evaluation"]
    if evaluation:
        metrics = ", ".join(
            f"{k} {v if k == 'example_count' else estimate_text(v, digits=4)}"
            for k, v in evaluation["metrics"].items()
        )
        lines += [
            f"Evaluation on the test split: blessed {'yes' if evaluation['blessed'] else 'no'}, "
            f"baseline model {evaluation['baseline_model_id'] or 'none (first blessed model)'}",
            f"  overall (95% intervals): {metrics}",
            *(f"  {reason}" for reason in evaluation.get("reasons", [])),
        ]
        if evaluation.get("decision_threshold") is not None:
            lines.append(f"  decision threshold: {evaluation['decision_threshold']:.4f}")
        if evaluation.get("fairness"):
            from pipeline.components import fairness

            report = fairness.FairnessReport(**evaluation["fairness"])
            lines += ["  " + line for line in fairness.format_report(report).splitlines()]
            lines += [f"  refused: {reason}" for reason in report.refusals]
    lines += [
        f"Training: {training['train_steps']} steps, validated on the "
        f"{', '.join(training.get('validation_splits') or ['eval'])} split, "
        f"seed {training.get('seed')}, models/ fingerprint {training.get('code_fingerprint')}",
        f"  hyperparameters ({_hyperparameters_origin(found)}): "
        + ", ".join(f"{k}={v}" for k, v in training["hyperparameters"].items()),
        f"Transform graph: {found['transform_graph']}",
        f"Schema: {found['schema']}",
        "  difference (inferred vs curated): "
        + (
            "; ".join(found["schema_difference"]) or "none"
            if found.get("schema_difference") is not None
            else "not computed"
        ),
        f"Examples {examples['id']}: {examples['uri']}",
        "  splits: " + ", ".join(f"{k} {v}" for k, v in examples["split_counts"].items()),
        f"Input data: {examples['input_base']}  (sha256 {examples['input_sha256']})",
    ]
    lines += [
        f"  {f['path']}  {f['bytes']} bytes  sha256 {f['sha256']}" for f in examples["input_files"]
    ]
    for manifest in examples.get("feedback", []):
        lines += feedback_lines(manifest)
    return "\n".join(lines)


def _hyperparameters_origin(found: dict) -> str:
    source = found["training"].get("hyperparameters_source")
    if source is None:
        return "the model's defaults: none were tuned"
    if source["tuned_in_run"] == found["model"]["trained_in_run"]:
        return f"tuned in this run, artifact {source['artifact_id']}"
    return f"reused, tuned in run {source['tuned_in_run']}, artifact {source['artifact_id']}"


def feedback_lines(manifest: dict) -> list[str]:
    """Where a feedback span's rows came from: request log rows and the outcomes file."""
    log, outcomes, counts = manifest["request_log"], manifest["outcomes"], manifest["counts"]
    first, last = log["joined_received_at"]
    lines = [
        f"Feedback span {manifest['span']} ({manifest['manifest']}): {counts['joined']} "
        f"served requests received {first} to {last}, model versions "
        + ", ".join(map(str, log["model_versions"]))
    ]
    lines += [
        f"  request log {f['path']} rows {f['first_row']}-{f['last_row']}" for f in log["files"]
    ]
    lines.append(f"  outcomes {outcomes['path']}  sha256 {outcomes['sha256']}")
    return lines


def show_uses(store, args) -> str | list:
    models = queries.uses(store, args.data)
    if args.json:
        return models
    rows = [
        [
            str(m["model_id"]),
            m["trained_in_run"] or "-",
            {True: "yes", False: "no", None: "not evaluated"}[m["blessed"]],
            ", ".join(m["pushed_to"]) or "-",
        ]
        for m in models
    ]
    return format_table(["model", "trained in run", "blessed", "pushed to"], rows)


def show_diff(store, args) -> str | dict:
    run_a, run_b = (resolve_run(store, args.pipeline_name, r) for r in (args.run_a, args.run_b))
    found = diff_runs(store, run_a, run_b)
    if args.json:
        return found
    lines = [f"A: {run_a}", f"B: {run_b}", "", "Settings that differ:"]
    lines += [f"  {k}: {a} -> {b}" for k, (a, b) in found["settings"].items()] or ["  none"]
    lines.append("Hyperparameters that differ:")
    hp = found.get("hyperparameters", {})
    lines += [f"  {k}: {a} -> {b}" for k, (a, b) in hp.items()] or ["  none"]
    if "drift" in found:
        lines.append("Data: " + ("same statistics artifact" if found["same_data"] else "different"))
        top = sorted(found["drift"].items(), key=lambda kv: -kv[1]["value"])
        lines += [f"  {name}: {d['measure']} {d['value']:.4f}" for name, d in top]
        lines.append("Schema changes:")
        lines += [f"  {c}" for c in found["schema_changes"]] or ["  none"]
    if "metrics" in found:

        def auc_change(item):
            a, b = item[1].get("auc", [None, None])
            return 0 if a is None or b is None else abs(b - a)

        overall, *slices = found["metrics"].items()
        shown = [overall, *sorted(slices, key=auc_change, reverse=True)[: args.slices]]
        rows = [
            [name, metric, f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}"]
            for name, values in shown
            for metric, (a, b) in values.items()
            if a is not None and b is not None and (name == overall[0] or metric == "auc")
        ]
        lines += [
            "Metrics (overall, then slices by AUC change):",
            format_table(["slice", "metric", "A", "B", "B-A"], rows),
        ]
    return "\n".join(lines)


COMMANDS = {
    "runs": show_runs,
    "trace": show_trace,
    "uses": show_uses,
    "diff": show_diff,
    "export": export,
    "mlflow": backfill,
    "openlineage": emit_events,
}


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # TFMA's deprecation notices
    try:
        store = open_store(args)
        answer = COMMANDS[args.command](store, args)
    except LineageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(answer if isinstance(answer, str) else json.dumps(answer, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
