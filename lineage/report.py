"""What a run did, for people: the per-component table, the eval metrics, the push."""

from __future__ import annotations

from dataclasses import dataclass, field

import ml_metadata as mlmd

from cli.tables import format_table
from lineage import schema_diff
from lineage.queries import RunSummary, run_summary
from pipeline import names
from pipeline.components import fairness
from pipeline.metadata import artifacts, store


@dataclass
class Evaluation:
    """The Evaluator's verdict in a run: overall metrics, the baseline's AUC, refusals."""

    overall_metrics: dict[str, float] = field(default_factory=dict)
    baseline_auc: float | None = None
    refusals: list[str] = field(default_factory=list)
    fairness: fairness.FairnessReport | None = None
    schema_changes: list[schema_diff.SchemaChange] | None = None


def run_evaluation(mlmd_store: mlmd.MetadataStore, summary: RunSummary) -> Evaluation:
    """Read the run's evaluation artifact, if its Evaluator ran or was reused."""
    evaluation = Evaluation()
    for record in summary.executions:
        outputs = store.run_outputs(mlmd_store, record.execution.id)
        if "evaluation" not in outputs:
            continue
        evaluation_uri = outputs["evaluation"][0].uri
        evaluation.overall_metrics = artifacts.overall_metrics(evaluation_uri)
        if store.run_inputs(mlmd_store, record.execution.id).get("baseline_model"):
            baseline = artifacts.slice_metrics(evaluation_uri, model="baseline")
            evaluation.baseline_auc = baseline.get(artifacts.OVERALL, {}).get("auc")
        evaluation.refusals = artifacts.validation_failures(evaluation_uri)
        evaluation.fairness = fairness.load_report(evaluation_uri)
        if evaluation.fairness is not None:
            evaluation.refusals += evaluation.fairness.refusals
    return evaluation


def threshold_lines(metrics: dict[str, float], threshold: float | None) -> list[str]:
    """Precision and recall at the decision threshold and at the fixed ones, and calibration."""
    if threshold is None:
        return []
    lines = [f"Decision threshold: {threshold:.4f}"]
    at = [(f"{threshold:.4f} (the model's)", "precision", "recall")]
    at += [
        (f"{t:g}", names.at_threshold("precision", t), names.at_threshold("recall", t))
        for t in names.FIXED_THRESHOLDS
    ]
    nan = float("nan")
    for label, precision, recall in at:
        if precision in metrics or recall in metrics:
            lines.append(
                f"  at {label}: precision {metrics.get(precision, nan):.4f}, "
                f"recall {metrics.get(recall, nan):.4f}"
            )
    if "fpr" in metrics:
        lines.append(
            f"  at the model's: false positive rate {metrics['fpr']:.4f}, "
            f"false negative rate {metrics.get('fnr', nan):.4f}"
        )
    if "calibration" in metrics:
        lines.append(
            f"  calibration (mean prediction / mean label, 1 is calibrated): "
            f"{metrics['calibration']:.4f}"
        )
    return lines


def format_run(summary: RunSummary, evaluation: Evaluation) -> str:
    """The runner's closing summary."""
    lines = [f"Run {summary.run_id}", ""]
    lines.append(
        format_table(
            ["component", "state", "cached/executed", "seconds"],
            [
                [e.node_id, e.state, "cached" if e.cached else "executed", f"{e.seconds:.1f}"]
                for e in summary.executions
            ],
        )
    )
    lines.append("")
    report_threshold = evaluation.fairness and evaluation.fairness.threshold
    if evaluation.schema_changes is not None:
        lines.append(
            "Schema difference (inferred vs curated): "
            + schema_diff.one_line(evaluation.schema_changes)
        )
    if evaluation.overall_metrics:
        lines.append("Eval metrics (overall slice):")
        shown = [m for m in names.EVAL_METRICS.values() if m != "calibration"]
        lines += [
            f"  {name}: {value:.4f}"
            for name, value in evaluation.overall_metrics.items()
            if name in shown or report_threshold is None
        ]
    if evaluation.baseline_auc is not None:
        lines.append(f"  baseline (last blessed model) auc: {evaluation.baseline_auc:.4f}")
    report = evaluation.fairness
    lines += threshold_lines(evaluation.overall_metrics, report and report.threshold)
    if report is not None:
        lines.append(fairness.format_report(report))
    blessing = {True: "yes", False: "no", None: "not evaluated"}[summary.blessed]
    lines.append(f"Blessed: {blessing}")
    lines += [f"  refused: {reason}" for reason in evaluation.refusals]
    if summary.pushed_to:
        lines.append(f"Pushed to: {summary.pushed_to}")
    elif summary.reused_push:
        lines.append(f"Pushed to: {summary.reused_push} (reused from the cache)")
    else:
        lines.append("Pushed to: nothing pushed")
    return "\n".join(lines)


def run_report(mlmd_store: mlmd.MetadataStore, run_id: str) -> str:
    """The table, metrics, blessing and push destination of one run, as text."""
    summary = run_summary(mlmd_store, run_id)
    evaluation = run_evaluation(mlmd_store, summary)
    evaluation.schema_changes = schema_diff.run_difference(mlmd_store, run_id)
    return format_run(summary, evaluation)


def failure_report(mlmd_store: mlmd.MetadataStore, run_id: str) -> str:
    """Why a run stopped: the data gate's findings in words, or which component failed."""
    from pipeline.components import data_validation

    lines = []
    for record in store.run_executions(mlmd_store, run_id):
        if record.state != "FAILED":
            continue
        if record.node_id == names.DATA_GATE:
            inputs = store.run_inputs(mlmd_store, record.execution.id)
            previous = inputs.get("previous_statistics", [])
            problems = data_validation.data_problems(
                inputs["anomalies"][0].uri,
                inputs["statistics"][0].uri,
                inputs["schema"][0].uri,
                previous[0].uri if previous else None,
            )
            lines.append(data_validation.explain(problems))
        else:
            lines.append(f"{record.node_id} failed.")
    return "\n".join(lines)
